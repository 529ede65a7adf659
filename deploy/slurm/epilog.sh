#!/bin/sh
# Slurm Epilog (slurmd, as root, on each node of the job): the job no longer holds its GPUs.
# In slurm.conf: Epilog=/etc/slurm/epilog.d/* (or this file's path). Always exits 0.
helper=${JOULEBOOK_GPU_MAP_HELPER:-/usr/libexec/joulebook/joulebook-gpu-map}
if [ ! -r "$helper" ]; then
    logger -t joulebook-gpu-map "$helper is missing: GPU mapping not updated" 2>/dev/null
    echo "joulebook-gpu-map: $helper is missing: GPU mapping not updated" >&2
    exit 0
fi
exec /bin/sh "$helper" slurm-epilog
