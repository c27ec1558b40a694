# Sourced by scripts/install-nvrtc12 and scripts/sass: packages of Debian 13's (trixie) non-free archive, downloaded with
# apt and unpacked into a folder of their own. apt's lists and cache live in a scratch folder, so the system's sources
# and package lists stay as they are.

# Makes the scratch folder $work (removed on exit) and the apt options $apt, and reads Debian 13's non-free lists.
debian13_begin() {
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/root"
  echo "deb http://deb.debian.org/debian trixie non-free" > "$work/sources.list"
  apt=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$work/lists"
       -o Dir::Cache="$work/cache" -o APT::Sandbox::User="$(id -un)" -qq)
  apt-get "${apt[@]}" update >&2
}

# debian13_unpack PACKAGE...: downloads the packages (not their dependencies) and unpacks them into $work/root.
debian13_unpack() {
  (cd "$work" && apt-get "${apt[@]}" download "$@" >&2)
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
}

# debian13_move DEST: $work/root becomes DEST (new or empty), so DEST appears only once everything is unpacked.
debian13_move() {
  mkdir -p "$(dirname "$1")"
  rmdir "$1" 2>/dev/null || true
  mv "$work/root" "$1"
}
