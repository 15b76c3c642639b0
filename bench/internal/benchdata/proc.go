package benchdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// ProcCPU returns the user+system CPU seconds a process (all its threads)
// has used so far, from /proc/PID/stat.
func ProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// the command name may contain spaces and parentheses: fields start after the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// ProcStatusKB returns a kB field of /proc/PID/status, e.g. "VmHWM" (peak
// resident set size) or "VmRSS".
func ProcStatusKB(pid int, field string) (int64, error) {
	return ProcStatusKBFile(fmt.Sprintf("/proc/%d/status", pid), field)
}

// ProcStatusKBFile reads a "Field:  N kB" line of a /proc file such as
// /proc/meminfo.
func ProcStatusKBFile(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB"))
			return strconv.ParseInt(rest, 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// SelfCPU returns this process's user+system CPU seconds (every thread).
func SelfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// MachineCPU returns the CPU seconds the whole machine has been busy
// (every CPU, every process: user, nice, system, irq, softirq, steal) since
// boot, from the first line of /proc/stat.
func MachineCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return float64(busy) / clockTicks, nil
}

// Watch reads the CPU of other processes (the server, the broker) at the
// start and the end of a contender's timed window.
type Watch struct {
	names   []string
	pids    []int
	start   []float64
	machine float64
}

// ParseWatch parses "server=123,broker=456" (empty: nothing to watch).
func ParseWatch(s string) (*Watch, error) {
	w := &Watch{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		name, pid, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("bad --watch entry %q (want name=pid)", part)
		}
		w.names = append(w.names, name)
		w.pids = append(w.pids, n)
	}
	return w, nil
}

// Start records every watched process's CPU now, and the machine's.
func (w *Watch) Start() error {
	var err error
	if w.machine, err = MachineCPU(); err != nil {
		return err
	}
	w.start = make([]float64, len(w.pids))
	for i, pid := range w.pids {
		c, err := ProcCPU(pid)
		if err != nil {
			return fmt.Errorf("watching %s: %w", w.names[i], err)
		}
		w.start[i] = c
	}
	return nil
}

// Stop returns every watched process's CPU seconds since Start, and under
// "machine" the whole machine's busy CPU seconds.
func (w *Watch) Stop() (map[string]float64, error) {
	out := map[string]float64{}
	m, err := MachineCPU()
	if err != nil {
		return nil, err
	}
	out["machine"] = m - w.machine
	for i, pid := range w.pids {
		c, err := ProcCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("watching %s: %w (did it exit during the run?)", w.names[i], err)
		}
		out[w.names[i]] = c - w.start[i]
	}
	return out, nil
}

// Result is what every contender prints as the last line of its stdout:
// one JSON object. Python contenders print the same keys.
type Result struct {
	Contender  string             `json:"contender"`
	Rows       int64              `json:"rows"`
	ValueBytes int64              `json:"value_bytes"` // record value bytes produced (0: unknown to the contender)
	Seconds    float64            `json:"seconds"`     // the timed window, wall clock
	ClientCPU  float64            `json:"client_cpu_s"`
	Watched    map[string]float64 `json:"watched_cpu_s"` // CPU seconds of watched processes over the window
	Checkpoint int64              `json:"checkpoints"`
	// CheckpointWait is the time spent waiting for checkpoint acks (sum),
	// CheckpointMax the longest single wait.
	CheckpointWait float64 `json:"checkpoint_wait_s,omitempty"`
	CheckpointMax  float64 `json:"checkpoint_max_s,omitempty"`
	Note           string  `json:"note,omitempty"`
	// Streams is how many streams (or native producer transactions /
	// flushes) the contender ran; Concurrency how many at a time. P50, P99
	// and PMax are the per-stream latencies in seconds (small streams:
	// stream opened → done; many streams: checkpoint acks).
	Streams     int64   `json:"streams,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	P50         float64 `json:"p50_s,omitempty"`
	P99         float64 `json:"p99_s,omitempty"`
	PMax        float64 `json:"pmax_s,omitempty"`
	// StreamRates are the rows/s of each stream (many streams).
	StreamRates []float64 `json:"stream_rates,omitempty"`
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of xs by the nearest-rank
// method; xs is sorted in place. 0 for no values.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// Print writes r as one JSON line to stdout.
func (r Result) Print() {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}
