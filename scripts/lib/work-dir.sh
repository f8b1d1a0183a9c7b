# Sourced by the scripts that run a server: a scratch directory in $work, and
# on exit the server whose pid is in $server stopped and the directory removed.
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
