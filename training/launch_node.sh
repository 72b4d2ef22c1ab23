#!/usr/bin/env bash
# Start, stop or inspect this node's share of a training run (the fleet's TrainingRun drives it over SSH; it decides
# whether a run starts, resumes or restarts: see training/changes.py).
#
#   launch_node.sh start    start the trainer detached (setsid + nohup; pidfile on the node); a no-op when it runs
#                           already. It never rewrites the run's status.json: the trainer does, once it runs.
#   launch_node.sh stop     SIGTERM the run's processes (torchrun and its workers) and wait: the trainer checkpoints,
#                           then exits
#   launch_node.sh status   print `@fleet-json {...}`: running, pid, and the run's status.json (head writes it)
#
# Env: FLEET_HOME, RUN_PATH (the run's directory on the shared filesystem, live path /lambda/nfs/<fs>/...),
# NODE_RANK, NNODES, NPROC (processes on this node), MASTER_ADDR, MASTER_PORT, TRAIN_CONFIG_B64 (the trainer's YAML,
# base64), TRAIN_MODULE (training.train, or training.cache_activations for a cache run) and TRAIN_ARGS (its extra
# arguments), FLEET_LAUNCH_ID (this launch: in the log's start line and the ranks' heartbeat files), FLEET_EXTRA_ENV
# (e.g. GLOO_SOCKET_IFNAME=lo). Secrets (HF_TOKEN) arrive already exported (read from the session's stdin, never on
# a command line) and reach the trainer only through its inherited environment.
set -euo pipefail
FLEET_HOME="${FLEET_HOME:-$HOME/lambda-sae}"
NODE_RANK="${NODE_RANK:-0}"
PIDFILE="$FLEET_HOME/train.pid"
RUN_DIR="${LAMBDA_INSTANCE_ROOT:-}$RUN_PATH"  # the emulator mounts filesystems under the instance root
LOG="$RUN_DIR/logs/node-$NODE_RANK.log"
# torchrun starts its workers in sessions of their own, so the launcher's process group does not hold them: every
# process of this node's run carries this tag in its environment, and a worker left behind by a launcher that died
# still counts as running (no second copy is started next to it) and still gets stopped.
TRAINER_TAG="FLEET_TRAINER_TAG=$FLEET_HOME"
fail() { echo "FLEET-ERROR: $*"; exit 1; }

tagged_pids() {
  { grep -lzxF -- "$TRAINER_TAG" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3
}

running_pid() {  # the launcher's pid, or a surviving worker's
  local pid=""
  [ -f "$PIDFILE" ] && pid="$(cat "$PIDFILE")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  pid="$(tagged_pids | head -n1)"
  [ -n "$pid" ] && echo "$pid"
}

signal_run() {  # $1: TERM or KILL; $2: the launcher's pid (or a surviving worker's)
  # TERM goes to the launcher alone while it lives: torchrun forwards it to its workers once (they checkpoint) and
  # waits for them; a second TERM would cut torchrun's shutdown short and lose the checkpoint. Workers whose launcher
  # is gone, and KILL, get the signal directly.
  if [ "$1" = TERM ] && kill -0 "$2" 2>/dev/null; then
    kill -TERM "$2" 2>/dev/null || true
    return 0
  fi
  kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
  local p
  for p in $(tagged_pids); do kill "-$1" "$p" 2>/dev/null || true; done
}

run_state() {  # state from status.json, "none" without one
  if [ -f "$RUN_DIR/status.json" ]; then
    sed -n 's/^ *"state": "\([a-z_]*\)".*/\1/p' "$RUN_DIR/status.json" | head -n1
  else
    echo none
  fi
}

status() {
  local pid state running=false
  pid="$(running_pid || true)"
  [ -n "$pid" ] && running=true
  state="$(run_state)"
  local status_json="null"
  [ -f "$RUN_DIR/status.json" ] && status_json="$(tr -d '\n' < "$RUN_DIR/status.json")"
  local crashed=false
  if [ "$running" = false ] && [ -f "$PIDFILE" ] && [ "$state" != finished ]; then crashed=true; fi
  echo "@fleet-json {\"node_rank\": $NODE_RANK, \"running\": $running, \"pid\": \"${pid}\", \"state\": \"$state\", \"crashed\": $crashed, \"needs_rerun\": $crashed, \"status\": $status_json}"
}

start() {
  mkdir -p "$RUN_DIR/logs" "$FLEET_HOME"
  local pid
  if pid="$(running_pid)"; then
    echo "trainer already running (pid $pid)"
    echo "@fleet launch=already-running"
    status; return 0
  fi
  echo "$TRAIN_CONFIG_B64" | base64 -d > "$FLEET_HOME/run-config.yaml"
  local py; py="$(cat "$FLEET_HOME/python" 2>/dev/null)" || fail "setup has not run on this node"
  if [ -n "${LAMBDA_INSTANCE_ROOT:-}" ]; then  # the emulator: /lambda/nfs/... lives under the instance's root
    PYTHONPATH="$FLEET_HOME" "$py" -m training.node_paths "$FLEET_HOME/run-config.yaml" \
      || fail "could not map the config's /lambda/nfs paths onto this instance"
  fi
  local module="${TRAIN_MODULE:-training.train}" extra=()
  case "$module" in training.train|training.cache_activations) ;; *) fail "unknown TRAIN_MODULE $module" ;; esac
  read -r -a extra <<< "${TRAIN_ARGS:-}"
  local cmd=("$py" -m "$module" --config "$FLEET_HOME/run-config.yaml" --out_dir "$RUN_DIR" "${extra[@]}")
  if [ "$((NNODES * NPROC))" -gt 1 ]; then
    cmd=("$py" -m torch.distributed.run --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$NPROC"
         --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" -m "$module"
         --config "$FLEET_HOME/run-config.yaml" --out_dir "$RUN_DIR" "${extra[@]}")
  fi
  cd "$FLEET_HOME"
  echo "=== $(date -u +%FT%TZ) node $NODE_RANK/$NNODES launch ${FLEET_LAUNCH_ID:-none} starts: ${cmd[*]}" >> "$LOG"
  # shellcheck disable=SC2086
  env PYTHONPATH="$FLEET_HOME" "$TRAINER_TAG" FLEET_LAUNCH_ID="${FLEET_LAUNCH_ID:-}" ${FLEET_EXTRA_ENV:-} \
    setsid nohup "${cmd[@]}" >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  echo "started trainer pid $(cat "$PIDFILE"), log $LOG"
  echo "@fleet launch=started"
  status
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "no trainer running"; rm -f "$PIDFILE"; echo "@fleet stop=not-running"; return 0
  fi
  # torchrun and its workers: the trainer checkpoints on SIGTERM, then exits.
  signal_run TERM "$pid"
  local left termed=""
  for _ in $(seq 1 "${STOP_TIMEOUT_SECONDS:-120}"); do
    left="$(running_pid)" || { rm -f "$PIDFILE"; echo "@fleet stop=clean"; return 0; }
    if [ "$left" != "$pid" ] && [ -z "$termed" ]; then  # the launcher is gone, a worker is left: TERM it once
      signal_run TERM "$left"; termed=1
    fi
    sleep 1
  done
  signal_run KILL "$pid"
  rm -f "$PIDFILE"
  fail "the trainer did not stop within ${STOP_TIMEOUT_SECONDS:-120} s of SIGTERM; killed it"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
