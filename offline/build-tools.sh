#!/usr/bin/env bash
# offline/build-tools.sh: the Go binaries the unit tests run on the host, at the versions the stack pins
# (offline/images.env): statsd_exporter (--check-config), prometheus/promtool (check config|rules) and
# amtool (check-config): the rows of offline/kit.table with host tools. Built from the Go module proxy
# into the cache (go/out/<binary>-<version>), linked from its bin/; cached binaries are not rebuilt.
# Run by: `make tools`. offline/build-images.sh builds the same binaries (its images hold them).
# Inputs: offline/images.env, offline/kit.table, AIRFLOW_STACK_CACHE (cache dir). Needs Go, no Docker.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lock_cache
start_all=$(now)
mapfile -t tools < <(tool_images)
start_go_jobs "${tools[@]}"
for image in "${tools[@]}"; do wait_go_job "$image"; done
link_host_tools "${tools[@]}"
report total "" "$(since "$start_all")" "host binaries for tests: $host_bin/{$(host_tools)}"
drop_go_caches
