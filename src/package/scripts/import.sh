#!/bin/sh
# Imports the key and chain of an older deployment into this one: see GUIDE.md.
# Usage: ./import.sh OLD_NODE_DIR [--node NEW_NODE_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 OLD_NODE_DIR [cod import options]" >&2; exit 2; }
old=$1
shift
exec "$here/bin/cod" import --from "$old" "$@"
