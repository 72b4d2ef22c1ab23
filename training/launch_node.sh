#!/usr/bin/env bash
# Start, stop or inspect this node's share of a training run (used by the fleet's train and wait steps).
#
#   launch_node.sh start    start the trainer detached (setsid + nohup; pidfile on the node); a no-op when it runs
#                           already, or when the run finished with the same config
#   launch_node.sh stop     SIGTERM the run's processes (torchrun and its workers) and wait: the trainer checkpoints,
#                           then exits
#   launch_node.sh status   print `@fleet-json {...}`: running, pid, and the run's status.json (head writes it)
#
# Env: FLEET_HOME, RUN_PATH (the run's directory on the shared filesystem, live path /lambda/nfs/<fs>/...), NODE_RANK, NNODES, NPROC (processes on this node),
# MASTER_ADDR, MASTER_PORT, TRAIN_CONFIG_B64 (the trainer's YAML, base64), FLEET_EXTRA_ENV (e.g. GLOO_SOCKET_IFNAME=lo)
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

signal_run() {  # $1: TERM or KILL, to the launcher's process group and every tagged process
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
  local config_same=false
  [ -f "$RUN_DIR/fleet-config.sha" ] && [ -f "$FLEET_HOME/run-config.sha" ] \
    && cmp -s "$RUN_DIR/fleet-config.sha" "$FLEET_HOME/run-config.sha" && config_same=true
  local crashed=false
  if [ "$running" = false ] && [ -f "$PIDFILE" ] && [ "$state" != finished ]; then crashed=true; fi
  echo "@fleet-json {\"node_rank\": $NODE_RANK, \"running\": $running, \"pid\": \"${pid}\", \"state\": \"$state\", \"crashed\": $crashed, \"needs_rerun\": $crashed, \"config_same\": $config_same, \"status\": $status_json}"
}

start() {
  mkdir -p "$RUN_DIR/logs" "$FLEET_HOME"
  echo "$TRAIN_CONFIG_B64" | base64 -d > "$FLEET_HOME/run-config.yaml"
  sha256sum < "$FLEET_HOME/run-config.yaml" | cut -c1-16 > "$FLEET_HOME/run-config.sha"
  local pid
  if pid="$(running_pid)"; then
    echo "trainer already running (pid $pid)"
    echo "@fleet launch=already-running"
    status; return 0
  fi
  if [ "$(run_state)" = finished ] && cmp -s "$RUN_DIR/fleet-config.sha" "$FLEET_HOME/run-config.sha" 2>/dev/null; then
    echo "run already finished with this config"
    echo "@fleet launch=already-finished"
    status; return 0
  fi
  if [ "$NODE_RANK" = 0 ]; then
    cp "$FLEET_HOME/run-config.sha" "$RUN_DIR/fleet-config.sha"
    # Replace the last run's state before the trainer does: a finished run restarted with a new config must not let
    # another node read the old "finished" with the new digest and stay out of the world, and a run restarted after a
    # crash must not read as "failed" (or "running") while the new trainer starts up.
    local previous; previous="$(run_state)"
    if [ "$previous" != none ]; then
      local reason="restarted after the run was $previous"
      [ "$previous" = finished ] && reason="relaunched with a new config"
      printf '{\n  "state": "starting",\n  "reason": "%s"\n}\n' "$reason" > "$RUN_DIR/.status.json.tmp"
      mv "$RUN_DIR/.status.json.tmp" "$RUN_DIR/status.json"
    fi
  fi
  local py; py="$(cat "$FLEET_HOME/python" 2>/dev/null)" || fail "setup has not run on this node"
  local cmd=("$py" -m training.train --config "$FLEET_HOME/run-config.yaml" --out_dir "$RUN_DIR")
  if [ "$((NNODES * NPROC))" -gt 1 ]; then
    cmd=("$py" -m torch.distributed.run --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$NPROC"
         --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" -m training.train
         --config "$FLEET_HOME/run-config.yaml" --out_dir "$RUN_DIR")
  fi
  cd "$FLEET_HOME"
  echo "=== $(date -u +%FT%TZ) node $NODE_RANK/$NNODES starts: ${cmd[*]}" >> "$LOG"
  # shellcheck disable=SC2086
  env PYTHONPATH="$FLEET_HOME" "$TRAINER_TAG" ${FLEET_EXTRA_ENV:-} setsid nohup "${cmd[@]}" >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  sleep 1
  running_pid >/dev/null || { tail -n 20 "$LOG"; fail "the trainer exited at once (log: $LOG)"; }
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
  for _ in $(seq 1 "${STOP_TIMEOUT_SECONDS:-120}"); do
    running_pid >/dev/null || { rm -f "$PIDFILE"; echo "@fleet stop=clean"; return 0; }
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
