#!/usr/bin/env bash
# offline/build.sh: the offline kit's entry point by its old name (the Dockerfiles' comments and image
# labels name it). `build.sh --tools` runs offline/build-tools.sh (the Go binaries the unit tests run),
# `build.sh` runs offline/build-images.sh (every stand-in image, and those binaries too).
# Run by: whoever calls it directly; `make tools` and `make offline-images` call the two scripts.
case "${1:-}" in
  --tools) exec bash "$(dirname "${BASH_SOURCE[0]}")/build-tools.sh" ;;
  '') exec bash "$(dirname "${BASH_SOURCE[0]}")/build-images.sh" ;;
  *) echo "usage: $0 [--tools]" >&2; exit 2 ;;
esac
