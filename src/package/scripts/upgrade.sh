#!/bin/sh
# Checks the peers of a deployed node for a newer package of this cod: see GUIDE.md.
# Usage: ./upgrade.sh [check|download|deploy] [options]   (default: check)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || set -- check
exec "$here/bin/cod" upgrade "$@"
