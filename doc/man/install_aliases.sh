#!/bin/sh
# Installs one ".so" alias page per function named in a section-3 page's
# NAME line. Usage (from meson): install_aliases.sh MANDIR PAGE...
set -eu
mandir=$1
shift
dest="${MESON_INSTALL_DESTDIR_PREFIX}/${mandir}/man3"
mkdir -p "$dest"
for page in "$@"; do
	case "$page" in *.3) ;; *) continue ;; esac
	base=$(basename "$page" .3)
	names=$(sed -n '/^\.SH NAME/{n;p;q}' "$page" | sed 's/ \\-.*//; s/,/ /g')
	for n in $names; do
		[ "$n" = "$base" ] && continue
		printf '.so man3/%s.3\n' "$base" >"$dest/$n.3"
	done
done
