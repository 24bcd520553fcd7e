#!/usr/bin/env bash
# Entrypoint of the offline redis stand-in (offline/redis/Dockerfile), following the official
# redis image's: flags or a *.conf alone mean redis-server; started as root, it hands /data to
# the redis user and drops to it. Change: only to follow the official script.
set -euo pipefail

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "$1" = redis-server ] || [ "$1" = /usr/bin/redis-server ] || [ "$1" = /usr/local/bin/redis-server ]; then
  # The official image compiles Redis with protected mode off (the container network is the
  # boundary, and without it an unauthenticated Redis refuses every remote client). Debian's
  # build defaults to on, so turn it off here, before the user's own arguments so they still
  # win; with a config file it stays whatever the file says (see offline/README.md).
  if [ "$#" -eq 1 ] || { [ "${2#-}" != "$2" ] && [ "$2" != --protected-mode ]; }; then
    first=$1
    shift
    set -- "$first" --protected-mode no "$@"
  fi

  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  # Data files readable only by their owner, as in the official image, unless a umask was chosen.
  if [ "$(umask)" = 0022 ]; then
    umask 0077
  fi
fi

exec "$@"
