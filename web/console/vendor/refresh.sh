#!/bin/sh
# refresh.sh: re-vendor the console's player libraries from npm at the exact
# versions below (the ones testdata/players/package.json pins for the tests).
# Only the minified browser builds and each package's license are kept.
# Run from anywhere: web/console/vendor/refresh.sh. Needs npm and tar.
# To upgrade: change a version here and in testdata/players/package.json
# (then npm install --prefix testdata/players to update its lock file), run
# this script, update VENDOR.md's table, and run the console tests.
set -eu

HLSJS=1.7.4
SHAKA=5.2.12
DASHJS=5.2.1

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PKG VERSION DIR FILE LICENSE: npm pack PKG@VERSION, copy FILE and
# LICENSE (paths inside the package) into $here/DIR.
fetch() {
	pkg=$1 ver=$2 dir=$3 file=$4 license=$5
	(cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
	tgz=$(ls "$tmp"/*.tgz)
	mkdir -p "$tmp/x"
	tar -xzf "$tgz" -C "$tmp/x"
	got=$(node -e 'console.log(require(process.argv[1]).version)' "$tmp/x/package/package.json")
	if [ "$got" != "$ver" ]; then
		echo "refresh.sh: $pkg: got version $got, want $ver" >&2
		exit 1
	fi
	rm -rf "${here:?}/$dir"
	mkdir -p "$here/$dir"
	cp "$tmp/x/package/$file" "$here/$dir/"
	cp "$tmp/x/package/$license" "$here/$dir/LICENSE"
	rm -rf "$tmp/x" "$tgz"
	echo "$pkg@$ver: $dir/$(basename "$file") $(sha256sum "$here/$dir/$(basename "$file")" | cut -c1-64)"
}

fetch hls.js "$HLSJS" hls.js dist/hls.min.js LICENSE
fetch shaka-player "$SHAKA" shaka-player dist/shaka-player.compiled.js LICENSE
fetch dashjs "$DASHJS" dashjs dist/modern/umd/dash.all.min.js LICENSE.md
