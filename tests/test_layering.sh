#!/bin/sh
# The arrows point down (doc/architecture.md): a layer knows the flow below
# it only through the flow API. TAP: no file in src/layer/ (at any depth)
# includes a transport header or names a function or object a transport
# (src/transport/, at any depth) declares in its headers, and the optional
# read_into operation is called only by the flow core (src/core/flow.c).
# Usage: test_layering.sh SOURCE_ROOT
cd "${1:?usage: $0 SOURCE_ROOT}/src" || exit 1
echo "1..3"

# Every file, however deep (find, not a glob: layer/http/, tls/, ws/...).
layer_files=$(find layer -type f \( -name '*.c' -o -name '*.h' \) | sort)
transport_h=$(find transport -type f -name '*.h' | sort)
transport_c=$(find transport -type f -name '*.c' | sort)
if [ -z "$layer_files" ] || [ -z "$transport_h" ] || [ -z "$transport_c" ]; then
	echo "Bail out! no layer or transport sources under $(pwd)"
	exit 1
fi

# shellcheck disable=SC2086 # the lists are file names without blanks
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"(transport/|[a-z_/]*(socket|vsock|vchan|pair|stdio|fnflow|tcp|unix)[a-z_]*\.h)' $layer_files)
if [ -z "$bad" ]; then
	echo "ok 1 - src/layer/ includes no transport header"
else
	echo "not ok 1 - src/layer/ includes transport headers:"
	echo "$bad" | sed 's/^/#   /'
fi

# Every rill__ name a transport header declares or a transport source
# defines at file scope (a side door may be declared elsewhere).
# shellcheck disable=SC2086
names=$( (grep -ohE '\brill__[A-Za-z0-9_]+' $transport_h
	grep -hE '^[a-z].*\brill__[A-Za-z0-9_]+[[:space:]]*\(' $transport_c |
		grep -v '^static' | grep -oE '\brill__[A-Za-z0-9_]+[[:space:]]*\(' |
		tr -d '( ') | sort -u)
hits=""
for n in $names; do
	# shellcheck disable=SC2086
	h=$(grep -nw "$n" $layer_files)
	[ -n "$h" ] && hits="$hits
$h"
done
if [ -n "$names" ] && [ -z "$hits" ]; then
	echo "ok 2 - src/layer/ uses none of the $(echo "$names" | wc -w) names the transports declare or define"
else
	echo "not ok 2 - src/layer/ uses transport functions:"
	echo "$hits" | grep . | sed 's/^/#   /'
fi

callers=$(grep -rnE '(->|\.)read_into[[:space:]]*\(' --include='*.c' . | grep -v '^\./core/flow\.c:')
if [ -z "$callers" ] && grep -qE -e '->read_into\(' core/flow.c; then
	echo "ok 3 - ops->read_into is called by the flow core only"
else
	echo "not ok 3 - ops->read_into called outside src/core/flow.c:"
	echo "$callers" | sed 's/^/#   /'
fi
