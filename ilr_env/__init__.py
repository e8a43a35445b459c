"""ilr_env: the ILR multi-agent discussion environment (PettingZoo ParallelEnv) and its question sources.

Public face::

    import ilr_env
    env = ilr_env.make("math500", num_agents=2, protocol="idea3")
    ilr_env.list_tasks(); ilr_env.load_questions("gsm8k", split="test", limit=10)
    ilr_env.grade(question, completion)
    ilr_env.agent_names(2)  # ["agent_0", "agent_1"]

Nothing here imports torch: the environment is usable with any policy, including remote APIs.
"""

from ilr_env import difficulty
from ilr_env.config import agent_names
from ilr_env.env import ILREnvError, ILRParallelEnv
from ilr_env.grading import Grade, grade
from ilr_env.protocols import single_prompt
from ilr_env.registry import list_envs, make, register
from ilr_env.tasks import Question, TaskNotFoundError, list_tasks, load_questions

__all__ = [
    "Grade",
    "ILREnvError",
    "ILRParallelEnv",
    "Question",
    "TaskNotFoundError",
    "agent_names",
    "difficulty",
    "grade",
    "list_envs",
    "list_tasks",
    "load_questions",
    "make",
    "register",
    "single_prompt",
]
__version__ = "0.1.0"
