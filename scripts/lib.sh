# Shared by scripts/*.sh.

# Install Debian packages with apt-get (through sudo unless root).
# Usage: install_packages package [package ...]
install_packages() {
  printf '\n==> installing %s\n' "$*"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Install the Debian packages whose binary is missing.
# Usage: ensure_packages binary:package [binary:package ...]
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  install_packages "${missing[@]}"
}

# A Python virtualenv at DIR (made if missing) with the given pip
# requirements installed; pip returns at once when they already are.
# Usage: ensure_venv DIR requirement [requirement ...]
ensure_venv() {
  local dir=$1
  shift
  if [[ ! -x $dir/bin/pip ]]; then
    ensure_packages python3:python3
    printf '\n==> making a Python virtualenv in %s\n' "$dir"
    # Debian ships venv's ensurepip in a separate package, python3-venv;
    # without it `python3 -m venv` fails (and leaves a venv without pip).
    if ! python3 -m venv "$dir" >/dev/null 2>&1; then
      rm -rf "$dir"
      install_packages python3-venv
      python3 -m venv "$dir"
    fi
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}
