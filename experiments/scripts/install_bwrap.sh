#!/bin/sh
# The bubblewrap step of `make install`: the code sandbox isolates model-written programs with bubblewrap.
# Installs it as root with apt-get; otherwise prints one line saying what is missing and what it means.
# ILR_INSTALL_AS_NONROOT=1 behaves as a non-root user would (to check that line as root).
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && [ "${ILR_INSTALL_AS_NONROOT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing bubblewrap (code sandbox isolation) with apt-get"
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1; }; then
    command -v bwrap >/dev/null 2>&1 && exit 0
  fi
  why="apt-get could not install it"
elif [ "$(id -u)" = 0 ] && [ "${ILR_INSTALL_AS_NONROOT:-0}" != 1 ]; then
  why="no apt-get here"
else
  why="not root, so not installed"
fi
echo "WARNING: bubblewrap (bwrap) is missing ($why): code tasks (humaneval, mbpp) cannot be graded until it is (or with ILR_SANDBOX=unsafe_subprocess, which isolates nothing); install it with 'sudo apt-get install bubblewrap' (see SECURITY.md)"
exit 0
