// Offline stand-in's entry point for cAdvisor: a trimmed copy of upstream's cmd/cadvisor.go.
// Why not upstream's own: cAdvisor's main package lives in the github.com/google/cadvisor/cmd
// module, which the Go module proxy does not serve (no cmd/ tags); the library modules it is
// built from (github.com/google/cadvisor and .../lib) are served at the pinned version.
// Same flag names and meanings as upstream for everything docker-compose.yml passes, the same
// /metrics collector (lib/metrics) and the same OOM counting (upstream cmd/internal/api/oom.go),
// plus /healthz. No web UI, REST API, storage drivers or pprof.
// Change: the version in offline/images.env (CADVISOR_IMAGE tag), then `go mod tidy` here.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/cadvisor/lib/cache/memory"
	"github.com/google/cadvisor/lib/container"
	"github.com/google/cadvisor/lib/manager"
	"github.com/google/cadvisor/lib/metrics"
	info "github.com/google/cadvisor/lib/model"
	"github.com/google/cadvisor/lib/utils/sysfs"
	"github.com/google/cadvisor/lib/version"
	"github.com/google/cadvisor/utils/oomparser"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	// Container providers and filesystem plugins, as upstream's cmd/internal/container/install.
	_ "github.com/google/cadvisor/container/docker/install"
	_ "github.com/google/cadvisor/lib/container/systemd/install"
	_ "github.com/google/cadvisor/lib/fs/overlay/install"
	_ "github.com/google/cadvisor/lib/fs/tmpfs/install"
	_ "github.com/google/cadvisor/lib/fs/vfs/install"
)

var (
	argIP                      = flag.String("listen_ip", "", "IP to listen on, defaults to all IPs")
	argPort                    = flag.Int("port", 8080, "port to listen")
	versionFlag                = flag.Bool("version", false, "print cAdvisor version and exit")
	prometheusEndpoint         = flag.String("prometheus_endpoint", "/metrics", "Endpoint to expose Prometheus metrics on")
	storageDuration            = flag.Duration("storage_duration", 2*time.Minute, "How long to keep data stored")
	storeContainerLabels       = flag.Bool("store_container_labels", true, "convert container labels and environment variables into labels on prometheus metrics for each container")
	whitelistedContainerLabels = flag.String("whitelisted_container_labels", "", "comma separated list of container labels to be converted to labels on prometheus metrics for each container; store_container_labels must be false")
	envMetadataWhiteList       = flag.String("env_metadata_whitelist", "", "comma-separated list of environment variable keys matched with specified prefix that needs to be collected for containers")
	rawCgroupPrefixWhiteList   = flag.String("raw_cgroup_prefix_whitelist", "", "comma-separated list of cgroup path prefix that needs to be collected even when -docker_only is specified")
)

// Upstream's defaults for disable_metrics.
var (
	ignoreMetrics = container.MetricSet{
		container.MemoryNumaMetrics:              struct{}{},
		container.NetworkTcpUsageMetrics:         struct{}{},
		container.NetworkUdpUsageMetrics:         struct{}{},
		container.NetworkAdvancedTcpUsageMetrics: struct{}{},
		container.ProcessSchedulerMetrics:        struct{}{},
		container.ProcessMetrics:                 struct{}{},
		container.HugetlbUsageMetrics:            struct{}{},
		container.ReferencedMemoryMetrics:        struct{}{},
		container.CPUTopologyMetrics:             struct{}{},
		container.ResctrlMetrics:                 struct{}{},
		container.CPUSetMetrics:                  struct{}{},
	}
	enableMetrics = container.MetricSet{}
)

func init() {
	optstr := container.AllMetrics.String()
	flag.Var(&ignoreMetrics, "disable_metrics", fmt.Sprintf("comma-separated list of `metrics` to be disabled. Options are %s.", optstr))
	flag.Var(&enableMetrics, "enable_metrics", fmt.Sprintf("comma-separated list of `metrics` to be enabled. If set, overrides 'disable_metrics'. Options are %s.", optstr))
}

// OOM kills per container, from the kernel log (/dev/kmsg), as upstream's cmd/internal/api/oom.go.
var oomCounts = struct {
	sync.Mutex
	byContainer map[string]uint64
}{byContainer: map[string]uint64{}}

func startOOMWatcher() {
	oomLog, err := oomparser.New()
	if err != nil {
		klog.Warningf("Could not configure a source for OOM detection, disabling OOM events: %v", err)
		return
	}
	out := make(chan *oomparser.OomInstance, 10)
	go oomLog.StreamOoms(out)
	go func() {
		for oom := range out {
			klog.Infof("OOM in container %q, victim %q (pid %d, %s)", oom.ContainerName, oom.VictimContainerName, oom.Pid, oom.ProcessName)
			oomCounts.Lock()
			oomCounts.byContainer[oom.ContainerName]++
			oomCounts.Unlock()
		}
	}()
}

type oomInfoProvider struct{ manager.Manager }

func (p *oomInfoProvider) GetRequestedContainersInfo(name string, options info.RequestOptions) (map[string]*info.ContainerInfo, error) {
	infos, err := p.Manager.GetRequestedContainersInfo(name, options)
	oomCounts.Lock()
	defer oomCounts.Unlock()
	for _, ci := range infos {
		count := oomCounts.byContainer[ci.Name]
		for _, stats := range ci.Stats {
			stats.OOMEvents = count
		}
	}
	return infos, err
}

func main() {
	klog.InitFlags(nil)
	defer klog.Flush()
	_ = flag.Set("v", "2")
	flag.Parse()
	if *versionFlag {
		fmt.Printf("cAdvisor version %s (%s)\n", version.Info["version"], version.Info["revision"])
		os.Exit(0)
	}

	included := container.AllMetrics.Difference(ignoreMetrics)
	if len(enableMetrics) > 0 {
		included = enableMetrics
	}
	klog.V(1).Infof("enabled metrics: %s", included.String())

	m, err := manager.New(memory.New(*storageDuration, nil), sysfs.NewRealSysFs(), manager.HousekeepingConfigFlags,
		included, strings.Split(*rawCgroupPrefixWhiteList, ","), strings.Split(*envMetadataWhiteList, ","), "", 0)
	if err != nil {
		klog.Fatalf("Failed to create a manager: %s", err)
	}

	labels := metrics.DefaultContainerLabels
	if !*storeContainerLabels {
		allowed := strings.Split(*whitelistedContainerLabels, ",")
		for i := range allowed {
			allowed[i] = strings.TrimSpace(allowed[i])
		}
		labels = metrics.BaseContainerLabels(allowed)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	goCollector := collectors.NewGoCollector()
	processCollector := collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	machineCollector := metrics.NewPrometheusMachineCollector(m, included)
	provider := &oomInfoProvider{Manager: m}
	mux.HandleFunc(*prometheusEndpoint, func(w http.ResponseWriter, req *http.Request) {
		opts := info.RequestOptions{IdType: info.TypeName, Count: 1, Recursive: true}
		r := prometheus.NewRegistry()
		r.MustRegister(metrics.NewPrometheusCollector(provider, labels, included, clock.RealClock{}, opts),
			machineCollector, goCollector, processCollector)
		promhttp.HandlerFor(r, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, req)
	})

	startOOMWatcher()
	if err := m.Start(); err != nil {
		klog.Fatalf("Failed to start manager: %v", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		if err := m.Stop(); err != nil {
			klog.Errorf("Failed to stop container manager: %v", err)
		}
		klog.Infof("Exiting given signal: %v", s)
		os.Exit(0)
	}()
	klog.V(1).Infof("Starting cAdvisor version: %s-%s on port %d", version.Info["version"], version.Info["revision"], *argPort)
	klog.Fatal(http.ListenAndServe(fmt.Sprintf("%s:%d", *argIP, *argPort), mux))
}
