# shellcheck shell=bash
# offline/lib.sh: what offline/build-tools.sh and offline/build-images.sh share: the cache's paths, error
# handling and clean-up, the build summary lines, the pins (offline/images.env) and the table of what is
# built from which source (offline/kit.table), and the Go builds (host binaries, in the background).
# Sourced, never run. Inputs: AIRFLOW_STACK_CACHE (cache dir; default ~/.cache/airflow-stack).
# Change: how a Go program is built here; what is built in kit.table; versions in images.env.
set -Eeuo pipefail

offline_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this
repo_dir=$(dirname "$offline_dir")
cache_dir=${AIRFLOW_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airflow-stack}
work_dir="$cache_dir/offline"
go_dir="$cache_dir/go"
host_bin="$cache_dir/bin"
# The name errors are reported under: the script that sourced this.
me="offline/$(basename "$0")"

die() {
  printf '%s: ERROR: %s\n' "$me" "$*" >&2
  exit 1
}
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
report() { printf '%-26s %-7s %7s  %s\n' "$1" "$2" "$3" "$4"; }

# Background jobs (Go builds) and temporary trees are cleaned up however the script ends.
bg_pids=()
tmp_dirs=()
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  local pid dir mnt
  for pid in "${bg_pids[@]}"; do kill_tree "$pid"; done
  for dir in "${tmp_dirs[@]}"; do
    [ -e "$dir" ] || continue
    # A failed debootstrap can leave /proc or /sys mounted inside its tree.
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done \
      < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    chmod -R u+w "$dir" 2>/dev/null || true
    rm -rf --one-file-system "$dir"
  done
}
trap cleanup EXIT

# Sets tmp_dir (a variable, not output: a command substitution could not register it for cleanup).
new_tmp_dir() {
  mkdir -p "$work_dir/tmp"
  tmp_dir=$(mktemp -d "$work_dir/tmp/$1.XXXXXX")
  tmp_dirs+=("$tmp_dir")
}

sha() { sha256sum | cut -d' ' -f1; }

# --- pins: offline/images.env is the one source of versions ----------------------------------------
declare -A images=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'*) continue ;; esac
  [[ "$line" =~ ^([A-Z_]+)=([^[:space:]]+)$ ]] || die "offline/images.env: not KEY=value: $line"
  images[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done < "$offline_dir/images.env"
tag_of() { printf '%s' "${images[$1]##*:}"; }

# --- what is built: offline/kit.table, one row an image ---------------------------------------------
kit_images=()
declare -A kit_pin=() kit_source=() kit_origin=() kit_binary=() kit_build=() kit_copy=() kit_flavour=() kit_host=()
declare -A kit_out=() # image -> cache folder of its Go binaries
while read -r image pin source origin binary build copy flavour host extra; do
  case "$image" in '' | '#'*) continue ;; esac
  if [ -z "$host" ] || [ -n "$extra" ]; then die "offline/kit.table: not 9 columns: $image"; fi
  [ -n "${images[$pin]:-}" ] || die "offline/images.env lacks $pin (offline/kit.table, $image)"
  [[ "${images[$pin]}" == */*:* ]] || die "offline/images.env: $pin=${images[$pin]} has no repository/name:tag"
  tag=$(tag_of "$pin")
  case "$source" in
    debian) [[ "$tag" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "$pin tag must be a version series such as 8.0 (Debian packages)" ;;
    pypi) ;;
    go | go-install | go-local)
      [[ "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$pin tag must be vX.Y.Z (the Go module version)"
      kit_out[$image]="$go_dir/out/$binary-$tag" ;;
    *) die "offline/kit.table: unknown source '$source' for $image" ;;
  esac
  kit_images+=("$image")
  kit_pin[$image]=$pin kit_source[$image]=$source kit_origin[$image]=$origin kit_binary[$image]=$binary
  kit_build[$image]=$build kit_copy[$image]=$copy kit_flavour[$image]=$flavour kit_host[$image]=$host
done < "$offline_dir/kit.table"
for key in "${!images[@]}"; do
  printf '%s\n' "${kit_pin[@]}" | grep -qx "$key" || die "offline/images.env: $key has no row in offline/kit.table"
done

# A row's docker build args, its placeholders filled in: {tag}, {version} (the tag to its first -), {KEY}.
build_args_of() { # image: one KEY=value a line
  local image=$1 tag arg key
  tag=$(tag_of "${kit_pin[$image]}")
  for arg in ${kit_origin[$image]//,/ }; do
    arg=${arg//\{tag\}/$tag}
    arg=${arg//\{version\}/${tag%%-*}}
    while [[ "$arg" =~ \{([A-Z_]+)\} ]]; do
      key=${BASH_REMATCH[1]}
      [ -n "${images[$key]:-}" ] || die "offline/kit.table: $image refers to {$key}, not in images.env"
      arg=${arg//\{$key\}/$(tag_of "$key")}
    done
    printf '%s\n' "$arg"
  done
}

# --- Go binaries, built on the host --------------------------------------------------------------
# Own module and build caches inside the cache dir: removing it really means a cold build.
go_env=(env GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 GOOS=linux
  GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build")

# The module version of a row: its tag, or (@prom3) Prometheus v3.X.Y published as v0.3XX.Y.
module_at() { # image: module@version
  local image=$1 module=${kit_origin[$1]} version
  version=$(tag_of "${kit_pin[$image]}")
  if [ "${module##*@}" = prom3 ]; then
    [[ "$version" =~ ^v3\.([0-9]+)\.([0-9]+)$ ]] || die "${kit_pin[$image]} tag must be v3.X.Y"
    version="v0.$((300 + BASH_REMATCH[1])).${BASH_REMATCH[2]}"
  fi
  printf '%s@%s' "${module%@*}" "$version"
}

# The folder of module@version in the module cache, downloaded if needed; a clear error where the
# module proxy does not serve it.
module_dir() { # module@version
  local json src
  if ! json=$("${go_env[@]}" go mod download -json "$1" 2>&1); then
    printf '%s\n' "$json" >&2
    die "the Go module proxy does not serve $1; pin a version it has in offline/images.env"
  fi
  src=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -d "$src" ] || die "no source directory for $1 in: $json"
  printf '%s' "$src"
}

# How a flavour stamps the version in (ldflags) and what its binary says it is.
version_ldflags() { # flavour version
  local p=github.com/prometheus/common/version
  case "$1" in
    prom) printf '%s' "-X $p.Version=${2#v} -X $p.Branch=HEAD -X $p.BuildUser=airflow-stack-offline" ;;
    # Its own version variables (upstream's Dockerfile sets the same three).
    redis) printf '%s' "-X main.BuildVersion=$2 -X main.BuildCommitSha=unknown -X main.BuildDate=unknown" ;;
    cadvisor)
      p=github.com/google/cadvisor/lib/version
      printf '%s' "-X $p.Version=$2 -X $p.Revision=unknown -X $p.BuildUser=airflow-stack-offline" ;;
    *) die "unknown flavour '$1' in offline/kit.table" ;;
  esac
}
check_version() { # flavour version binary
  local said
  case "$1" in
    prom) said=$("$3" --version 2>&1) && [[ "$said" == *"version ${2#v} "* ]] ;;
    redis) said=$("$3" -version 2>&1) && [[ "$said" == *"Exporter $2 "* ]] ;;
    cadvisor) said=$("$3" --version 2>&1) && [[ "$said" == "cAdvisor version $2 "* ]] ;;
  esac || die "the built $(basename "$3") does not report version $2"
}

# Per-image steps around the common build, where a program needs them: before_<image> SRC runs in the
# source tree before go build, after_<image> SRC OUT once the binaries are in OUT.
before_alertmanager() {
  # go:embed needs ui/app/dist, which the release fills with the npm/Elm UI build (not in the module,
  # and its toolchain is not reachable here). The API, amtool and /-/healthy work without it.
  [ ! -e "$1/ui/app/dist" ] || die "alertmanager ships ui/app/dist; drop the UI note"
  mkdir "$1/ui/app/dist"
  alertmanager_ui_note "$1/ui/app/dist"
}
after_alertmanager() {
  # The unit tests validate alertmanager.yml with it.
  "$2/amtool" check-config "$2/alertmanager.yml" > /dev/null || die "amtool rejects the upstream example config"
}
after_statsd-exporter() {
  # The unit tests validate the mapping file with it.
  [[ "$("$2/statsd_exporter" --help 2>&1)" == *--*check-config* ]] || die "statsd_exporter has no --check-config flag"
}
# cAdvisor's main package is in the module github.com/google/cadvisor/cmd, which the module proxy
# does not serve (it has no tags of its own). offline/cadvisor/src is a trimmed copy of that main
# package (same flags, /metrics and OOM counting) on the library modules, which it does serve.
before_cadvisor() {
  local version
  version=$(tag_of CADVISOR_IMAGE)
  grep -q "^	github.com/google/cadvisor/lib $version\$" "$1/go.mod" \
    || die "offline/cadvisor/src/go.mod does not require github.com/google/cadvisor/lib $version (images.env); run go get there"
}
after_cadvisor() {
  local version src lib
  version=$(tag_of CADVISOR_IMAGE)
  src=$(module_dir "github.com/google/cadvisor@$version")
  lib=$(module_dir "github.com/google/cadvisor/lib@$version")
  cp "$src/LICENSE" "$2/"
  cmp -s "$src/LICENSE" "$lib/LICENSE" || die "cadvisor's lib module has another LICENSE; copy it too"
}

# Alertmanager serves its UI's HTML only pre-compressed: index.html.gz or .br, by Accept-Encoding.
# The note is ASCII, so its length in characters is its length in bytes. No brotli tool is needed:
# one uncompressed meta-block is a valid brotli stream (RFC 7932, 9.2). Header bits, LSB first:
# WBITS=16, ISLAST=0, MNIBBLES=4, MLEN-1 (16 bits), ISUNCOMPRESSED=1; then the bytes; then 0x03,
# an empty last meta-block.
alertmanager_ui_note() { # dir
  local html n
  html='<!doctype html><title>Alertmanager</title><p>Offline stand-in: the Alertmanager web UI is not built into this image. Use the API (/api/v2/) or amtool.</p>'
  printf '%s\n' "$html" | gzip -9n > "$1/index.html.gz"
  n=${#html} # MLEN - 1: the note is written with a trailing newline
  {
    printf '%b' "\\x$(printf %02x $(((n & 15) << 4)))" "\\x$(printf %02x $(((n >> 4) & 255)))" \
      "\\x$(printf %02x $((((n >> 12) & 15) | 16)))"
    printf '%s\n' "$html"
    printf '\x03'
  } > "$1/index.html.br"
}

# build_go IMAGE: the row's binaries and copied files into its cache folder (kit_out). go-install:
# `go install module@version` (no replace directives, version list served). go: inside a copy of the
# module, as its release does (its own go.mod, go.sum and replaces), since `go install` refuses replace
# directives and first reads the module's version list, which the proxy refuses (403) for some modules
# although it serves the pinned versions. go-local: a copy of offline/<origin>. CGO off, tag netgo,
# -trimpath; no builtinassets tag for Prometheus: the React UI is not in the module.
build_go() {
  local image=$1 tmp src version ldflags file pkg
  local -a packages
  version=$(tag_of "${kit_pin[$image]}")
  ldflags=$(version_ldflags "${kit_flavour[$image]}" "$version")
  IFS=',' read -r -a packages <<< "${kit_build[$image]}"
  new_tmp_dir "${kit_binary[$image]}"
  tmp=$tmp_dir
  mkdir "$tmp/out"
  case "${kit_source[$image]}" in
    go-install)
      src=$(module_dir "$(module_at "$image")")
      for pkg in "${packages[@]}"; do
        pkg=${pkg#.}
        GOBIN="$tmp/out" "${go_env[@]}" go install -trimpath -tags netgo -ldflags "$ldflags" \
          "$(module_at "$image" | sed "s#@#${pkg}@#")"
      done ;;
    go | go-local)
      if [ "${kit_source[$image]}" = go ]; then
        cp -r "$(module_dir "$(module_at "$image")")" "$tmp/src"
      else
        cp -r "$offline_dir/${kit_origin[$image]}" "$tmp/src"
      fi
      chmod -R u+w "$tmp/src"
      src=$tmp/src
      if declare -F "before_$image" > /dev/null; then "before_$image" "$src"; fi
      (cd "$src" && "${go_env[@]}" go build -trimpath -tags netgo -ldflags "$ldflags" -o "$tmp/out/" "${packages[@]}") ;;
  esac
  if [ "${kit_copy[$image]}" != - ]; then
    for file in ${kit_copy[$image]//,/ }; do cp "$src/$file" "$tmp/out/"; done
  fi
  check_version "${kit_flavour[$image]}" "$version" "$tmp/out/${kit_binary[$image]}"
  if declare -F "after_$image" > /dev/null; then "after_$image" "$src" "$tmp/out"; fi
  chmod -R a+rX,u+w "$tmp/out"
  mkdir -p "$(dirname "${kit_out[$image]}")"
  rm -rf "${kit_out[$image]}"
  mv "$tmp/out" "${kit_out[$image]}"
}

# Go builds run in the background (the slowest part of a cold build), one log each.
declare -A go_job_pid=() go_job_start=()
# A job cleans up its own temporary trees and must not kill its siblings on the way out.
go_job_body() { # image
  bg_pids=()
  tmp_dirs=()
  trap cleanup EXIT
  build_go "$1"
}
start_go_jobs() { # image...: those whose binaries are not cached yet
  local image name
  for image; do
    name=${kit_binary[$image]}
    [ ! -x "${kit_out[$image]}/$name" ] || continue
    command -v go > /dev/null \
      || die "Go (>= the version in the module's go.mod) is needed to build $name; install it from go.dev/dl"
    go_job_body "$image" > "$work_dir/logs/$name.log" 2>&1 &
    go_job_pid[$name]=$!
    go_job_start[$name]=$(now)
    bg_pids+=("$!")
  done
}
wait_go_job() { # image
  local name=${kit_binary[$1]} pid
  pid=${go_job_pid[${kit_binary[$1]}]:-}
  if [ -z "$pid" ]; then
    report "$name (host)" cached 0.0s "$host_bin/"
    return 0
  fi
  if ! wait "$pid"; then
    tail -n 40 "$work_dir/logs/$name.log" >&2
    die "building $name failed; full log: $work_dir/logs/$name.log"
  fi
  report "$name (host)" built "$(since "${go_job_start[$name]}")" "$host_bin/"
}
# The rows whose binaries the unit tests run, and their links in the cache's bin/.
tool_images() {
  local image
  for image in "${kit_images[@]}"; do
    if [ "${kit_host[$image]}" != - ]; then printf '%s\n' "$image"; fi
  done
}
link_host_tools() { # image...: their host tools, if they have any
  local image tool
  for image; do
    [ "${kit_host[$image]}" != - ] || continue
    for tool in ${kit_host[$image]//,/ }; do ln -sfn "${kit_out[$image]}/$tool" "$host_bin/$tool"; done
  done
}
host_tools() { # the names, comma-separated
  local image
  for image in $(tool_images); do printf '%s\n' "${kit_host[$image]}"; done | paste -sd,
}
# The binaries are what is kept; Go's module and build caches (about 4 GB) only served this build.
drop_go_caches() {
  bg_pids=()
  if [ "${#go_job_pid[@]}" -gt 0 ]; then rm -rf "$go_dir/mod" "$go_dir/build"; fi
}

# One build at a time per cache: a second run waits instead of sharing the context directories.
lock_cache() {
  mkdir -p "$work_dir/logs" "$go_dir" "$host_bin"
  exec 9> "$work_dir/.lock"
  if ! flock -n 9; then
    echo "$me: another build is running with cache $cache_dir; waiting for it" >&2
    flock 9
  fi
}
