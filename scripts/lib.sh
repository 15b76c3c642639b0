# Shell helpers shared by scripts/kafka.sh and scripts/registry.sh (sourced, not run).

# alive PID: the process exists and is not a zombie (a child not reaped yet).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# port_listening PORT: something accepts connections on 127.0.0.1:PORT.
port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_of_run PIDFILE MARKER: prints the pid in PIDFILE when that process is
# alive and its command line has the argument MARKER (so a recycled pid or a
# zombie does not count).
pid_of_run() {
  local pid cmdline
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmdline=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  grep -qxF -- "$2" <<<"$cmdline" || return 1
  echo "$pid"
}

# lock_name: serialises commands on one NAME ($RUNS/.$NAME.lock, held on fd 9
# until the script exits).
lock_name() {
  mkdir -p "$RUNS"
  exec 9>"$RUNS/.$NAME.lock"
  flock 9
}
