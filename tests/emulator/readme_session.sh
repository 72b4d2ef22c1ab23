# The README's curl session, verbatim (tests/emulator/test_persistence.py runs it against a fresh emulator).
# Needs LAMBDA_API_URL and LAMBDA_API_KEY from `python -m lambda_provider.emulator` (or .lambda-emulator/emulator.env).

# 1. Add an SSH key; the API generates the pair and returns the private key once.
curl -sf -u "$LAMBDA_API_KEY:" "$LAMBDA_API_URL/ssh-keys" -d '{"name": "my-key"}' | jq -r '.data.private_key' > key.pem
chmod 400 key.pem

# 2. Create a filesystem in us-east-3 (note: create is /filesystems, the list is /file-systems).
curl -sf -u "$LAMBDA_API_KEY:" "$LAMBDA_API_URL/filesystems" -d '{"name": "checkpoints", "region": "us-east-3"}' | jq -c .data

# 3. Launch a GH200 (arm64) in us-east-3 with that key and filesystem.
ID=$(curl -sf -u "$LAMBDA_API_KEY:" "$LAMBDA_API_URL/instance-operations/launch" \
  -d '{"region_name": "us-east-3", "instance_type_name": "gpu_1x_gh200", "ssh_key_names": ["my-key"],
       "file_system_names": ["checkpoints"], "name": "sae-node"}' | jq -r '.data.instance_ids[0]')
echo "launched $ID"

# 4. Watch it boot: booting (no ip) -> booting (ip) -> active.
while true; do
  INSTANCE=$(curl -sf -u "$LAMBDA_API_KEY:" "$LAMBDA_API_URL/instances/$ID")
  echo "$INSTANCE" | jq -c '.data | {status, ip, ssh_port}'
  [ "$(echo "$INSTANCE" | jq -r .data.status)" = active ] && break
  sleep 1
done

# 5. SSH in as ubuntu and run nvidia-smi (the emulator reports its SSH port as `ssh_port`; live Lambda uses 22).
IP=$(echo "$INSTANCE" | jq -r .data.ip); PORT=$(echo "$INSTANCE" | jq -r '.data.ssh_port // 22')
ssh -i key.pem -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
  "ubuntu@$IP" 'nvidia-smi -L; nvidia-smi; echo "arch: ${LAMBDA_EMULATED_ARCH:-$(uname -m)}"; ls "${LAMBDA_INSTANCE_ROOT:-}/lambda/nfs"'

# 6. Terminate it.
curl -sf -u "$LAMBDA_API_KEY:" "$LAMBDA_API_URL/instance-operations/terminate" -d "{\"instance_ids\": [\"$ID\"]}" \
  | jq -c '.data.terminated_instances[0].status'
