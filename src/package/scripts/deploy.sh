#!/bin/sh
# Deploys a cod node from this package: see GUIDE.md.
# Usage: ./deploy.sh PACKAGE.cod.tar [--node-ini FILE] [--key FILE] [--dir DIR] ...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE.cod.tar [cod deploy options]" >&2; exit 2; }
package=$1
shift
exec "$here/bin/cod" deploy --package "$package" "$@"
