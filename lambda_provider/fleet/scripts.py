"""Shell run on the nodes by the fleet's steps (the longer ones live in training/*.sh and are copied over)."""

LAUNCHER = 'bash "$HOME/lambda-sae/training/launch_node.sh"'
SETUP = 'bash "$HOME/lambda-sae/training/setup_node.sh"'
TRAINING_UPLOAD_DIR = "$HOME/lambda-sae/training"

# The ready gate: what the instance type promises must be there (arch, GPUs) and the filesystem must be writable.
# Env: EXPECT_ARCH (x86_64|aarch64), EXPECT_GPUS, EXPECT_GPU_MODEL, FS_MOUNT (the live mount point).
READY = r"""set -u
fail() { echo "FLEET-ERROR: $*"; exit 1; }
arch="${LAMBDA_EMULATED_ARCH:-$(uname -m)}"
echo "@fleet arch=$arch"
echo "@fleet hostname=$(hostname)"
[ "$arch" = "$EXPECT_ARCH" ] || fail "CPU architecture is $arch but the instance type promises $EXPECT_ARCH"
gpus="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1)" || fail "nvidia-smi failed: $gpus"
count="$(printf '%s\n' "$gpus" | grep -c .)"
name="$(printf '%s\n' "$gpus" | head -n1 | cut -d, -f1)"
echo "@fleet gpu_count=$count"
echo "@fleet gpu_name=$name"
[ "$count" = "$EXPECT_GPUS" ] || fail "nvidia-smi shows $count GPU(s), the instance type promises $EXPECT_GPUS"
case "$name" in *"$EXPECT_GPU_MODEL"*) ;; *) fail "nvidia-smi shows '$name', expected a $EXPECT_GPU_MODEL" ;; esac
fs="${LAMBDA_INSTANCE_ROOT:-}$FS_MOUNT"
[ -d "$fs" ] || fail "the filesystem is not mounted at $FS_MOUNT"
probe="$fs/.fleet-probe-$$"
{ echo ok > "$probe" && rm -f "$probe"; } 2>/dev/null || fail "the filesystem at $FS_MOUNT is not writable"
echo "@fleet filesystem=$FS_MOUNT"
"""
