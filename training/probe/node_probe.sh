#!/usr/bin/env bash
# The fleet's probe step (stack key lambda-sae:probe), run on the head node once `pulumi up` has waited for the run:
# PII probes on the run's SAE, report next to it on the filesystem, headline span F1s as an `@fleet-json` line.
# Env: RUN_DIR (the run's directory as the fleet names it), PROBE_ARGS (extra CLI arguments), FLEET_HOME.
set -euo pipefail
FLEET_HOME="${FLEET_HOME:-$HOME/lambda-sae}"
fail() { echo "FLEET-ERROR: $*"; exit 1; }
run="${LAMBDA_INSTANCE_ROOT:-}$RUN_DIR"
# the emulator: a --data path on the filesystem (/lambda/nfs/...) lives under the instance's root
if [ -n "${LAMBDA_INSTANCE_ROOT:-}" ]; then
  PROBE_ARGS="${PROBE_ARGS:-}"; PROBE_ARGS="${PROBE_ARGS//\/lambda\/nfs\//$LAMBDA_INSTANCE_ROOT/lambda/nfs/}"
fi

marker="$(ls "$FLEET_HOME"/.setup-done-* 2>/dev/null | head -n1 || true)"
PY="$( [ -n "$marker" ] && cat "$marker" || command -v python3)"
state="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("state"))' "$run/status.json" 2>/dev/null)" \
  || fail "no readable status.json in $RUN_DIR: the run never started; pulumi up starts it"
case "$state" in
  finished|stopped) ;;
  *) fail "the run in $RUN_DIR is $state, not finished: raise training.waitMinutes so up waits for it, then pulumi up" ;;
esac

missing="$("$PY" - <<'PYEOF'
import importlib.util
print(" ".join(p for m, p in [("faker", "faker==40.63.0"), ("sklearn", "scikit-learn==1.9.1")]
               if importlib.util.find_spec(m) is None))
PYEOF
)"
if [ -n "$missing" ]; then
  [ "${LAMBDA_EMULATOR:-0}" = 1 ] && fail "the emulator's python lacks $missing; run make setup"
  if [ ! -x "$FLEET_HOME/venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$FLEET_HOME/venv" || fail "python3 -m venv failed (apt install python3-venv)"
  fi
  PY="$FLEET_HOME/venv/bin/python"
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet $missing || fail "pip install $missing failed"
fi

cd "$FLEET_HOME"
# shellcheck disable=SC2086
"$PY" -m training.probe --sae "$run" ${PROBE_ARGS:-} > "$run/probe.log" 2>&1 \
  || fail "python -m training.probe failed: $(tail -n 3 "$run/probe.log" | tr '\n' ' ') (log: $RUN_DIR/probe.log)"
"$PY" - "$run/probe_report.json" "$RUN_DIR" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
print("@fleet-json " + json.dumps({"span_f1": report["headline_span_f1"], "report": sys.argv[2] + "/probe_report.md"}))
PYEOF
