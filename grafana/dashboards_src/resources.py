"""Resources: the containers' CPU and memory against their limits, out-of-memory kills (cAdvisor), and
the host's disk, memory and CPU (node-exporter). prometheus.yml names cAdvisor's series by `container`
(the Docker container's name) and `compose_service`."""

from __future__ import annotations

from .common import RESOURCES_UID, TAG, links
from .panels import GREEN, ORANGE, RED, Dashboard, Panel, Query, stat, steps_up, timeseries
from .promql import RATE
from .thresholds import CONTAINER_MEMORY_OF_LIMIT, HOST_DISK_USED, HOST_MEMORY_USED

CADVISOR = 'job="cadvisor"'
NODE = 'job="node-exporter"'
# The filesystems HostDiskSpaceLow watches: real disks, not tmpfs/overlay, not read-only.
FILESYSTEM = f'{NODE}, fstype!~"tmpfs|overlay|squashfs"'
DISK_USED = (
    f"(1 - node_filesystem_avail_bytes{{{FILESYSTEM}}} / node_filesystem_size_bytes{{{FILESYSTEM}}})"
    f" unless on (instance, device, mountpoint) node_filesystem_readonly{{{NODE}}} == 1"
)
MEMORY_USED = f"1 - node_memory_MemAvailable_bytes{{{NODE}}} / node_memory_MemTotal_bytes{{{NODE}}}"
# Working set / limit per container; `> 0` leaves out containers without a limit (cAdvisor reports 0).
OF_LIMIT = (
    f"max by (container) (container_memory_working_set_bytes{{{CADVISOR}}})"
    f" / max by (container) (container_spec_memory_limit_bytes{{{CADVISOR}}} > 0)"
)
CPU = f"sum by (container) (rate(container_cpu_usage_seconds_total{{{CADVISOR}}}[{RATE}]))"


def row_summary() -> list[Panel]:
    """Headline numbers."""
    return [
        stat(
            "Memory used of limit · highest container",
            "The container closest to its memory limit: working set / mem_limit (set from the "
            "service's *_MEMORY_LIMIT in .env). At 90 % for 5 min ContainerMemoryNearLimit fires; at "
            "100 % the kernel kills a process in it (see OOM kills).",
            [Query(f"max({OF_LIMIT})")],
            "percentunit",
            steps_up(GREEN, (ORANGE, 0.75), (RED, CONTAINER_MEMORY_OF_LIMIT.value)),
            width=5,
            decimals=0,
        ),
        stat(
            "OOM kills · 24 h",
            "Processes the kernel killed for reaching their container's memory limit, all containers, "
            "last 24 h (counted by cAdvisor from the kernel log while it runs). In a worker the victim "
            "is a task: see 'OOM kills by container' and the ContainerOOMKilled runbook.",
            [Query(f"sum(increase(container_oom_events_total{{{CADVISOR}}}[24h]))", instant=True)],
            "short",
            steps_up(GREEN, (RED, 1)),
            width=4,
            decimals=0,
        ),
        stat(
            "Host disk used · fullest filesystem",
            "Used share of the host's fullest filesystem (tmpfs, overlay and read-only ones left out). "
            "Above 85 % for 10 min HostDiskSpaceLow fires: Postgres, Redis and the task logs stop "
            "writing when it is full.",
            [Query(f"max({DISK_USED})")],
            "percentunit",
            steps_up(GREEN, (ORANGE, 0.7), (RED, HOST_DISK_USED.value)),
            width=5,
            decimals=0,
        ),
        stat(
            "Host memory used",
            "Share of the host's memory not available to new work (1 - MemAvailable / MemTotal). Above "
            "90 % for 10 min HostMemoryLow fires: the kernel then kills processes of any container.",
            [Query(f"max({MEMORY_USED})")],
            "percentunit",
            steps_up(GREEN, (ORANGE, 0.75), (RED, HOST_MEMORY_USED.value)),
            width=5,
            decimals=0,
        ),
        stat(
            "Host CPU busy",
            "Share of the host's CPU time not idle over the last 5 minutes, all cores. Near 100 % tasks "
            "start late and the schedulers' loops slow down; see 'CPU by container' for who uses it.",
            [Query(f'1 - avg(rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[5m]))')],
            "percentunit",
            steps_up(GREEN, (ORANGE, 0.7), (RED, 0.9)),
            width=5,
            decimals=0,
        ),
    ]


def row_containers() -> list[Panel]:
    """CPU and memory by container."""
    return [
        timeseries(
            "CPU by container",
            "CPU each container uses, in cores (1 = one core busy), stacked. Workers grow with running "
            "tasks; an idle stack should stay well under one core in total.",
            [Query(CPU, "{{container}}")],
            "short",
            stack=True,
            legend_table=True,
        ),
        timeseries(
            "Memory by container",
            "Working set of each container (the memory the kernel cannot simply reclaim, which is what "
            "the memory limit is compared with), stacked.",
            [
                Query(
                    f"max by (container) (container_memory_working_set_bytes{{{CADVISOR}}})",
                    "{{container}}",
                )
            ],
            "bytes",
            stack=True,
            legend_table=True,
        ),
    ]


def row_memory_limits() -> list[Panel]:
    """Memory against limits, OOM kills."""
    return [
        timeseries(
            "Memory used of limit by container",
            "Working set / memory limit per container with a limit. A line that climbs to 100 % ends "
            "in an out-of-memory kill; a plateau near 90 % is a limit too tight for the normal load "
            "(raise its *_MEMORY_LIMIT in .env).",
            [Query(OF_LIMIT, "{{container}}")],
            "percentunit",
            steps=steps_up(GREEN, (RED, CONTAINER_MEMORY_OF_LIMIT.value)),
            legend_table=True,
        ),
        timeseries(
            "OOM kills by container",
            "Processes killed by the kernel for reaching their container's memory limit, per container "
            "and interval. A worker's kill is a task that failed without a traceback: find it in the "
            "Airflow UI at that time.",
            [
                Query(
                    f"sum by (container) (increase(container_oom_events_total{{{CADVISOR}}}[{RATE}]))",
                    "{{container}}",
                )
            ],
            "short",
            bars=True,
        ),
    ]


def row_host() -> list[Panel]:
    """Host disk and memory."""
    return [
        timeseries(
            "Host disk used by filesystem",
            "Used share of each host filesystem (tmpfs, overlay and read-only ones left out). Growth: "
            "backups (BACKUP_DIR), Docker images and build cache (`docker system df`), Prometheus and "
            "Postgres volumes.",
            [Query(f"max by (mountpoint) ({DISK_USED})", "{{mountpoint}}")],
            "percentunit",
            steps=steps_up(GREEN, (RED, HOST_DISK_USED.value)),
        ),
        timeseries(
            "Host memory",
            "The host's memory: total, and available to new work (free plus reclaimable cache). "
            "Available near zero: the containers' limits add up to more than the host has.",
            [
                Query(f"max(node_memory_MemTotal_bytes{{{NODE}}})", "total"),
                Query(f"max(node_memory_MemAvailable_bytes{{{NODE}}})", "available"),
            ],
            "bytes",
        ),
    ]


def dashboard() -> Dashboard:
    rows = [row_summary(), row_containers(), row_memory_limits(), row_host()]
    return Dashboard(
        uid=RESOURCES_UID,
        title="Airflow · Resources",
        folder="Resources",
        description="Containers' CPU, memory against their limits and out-of-memory kills (cAdvisor); the "
        "host's disk, memory and CPU (node-exporter).",
        tags=[TAG, "resources"],
        rows=rows,
        links=links(),
    )
