#!/bin/sh
# Slurm Prolog (slurmd, as root, on each node of the job): records the GPUs the job holds for
# joulebook-exporter (--jobs.gpu-mapping-dir). In slurm.conf:
#   Prolog=/etc/slurm/prolog.d/*     (or this file's path; Slurm runs every matching script)
# slurmd passes SLURM_JOB_ID and SLURM_JOB_GPUS to the Prolog; nothing from the job's user.
# Always exits 0: a failure is logged (syslog, tag joulebook-gpu-map) and never drains the node.
# Run the Prolog at allocation (PrologFlags=Alloc) so that GPUs held by a job that has not
# started a step yet are mapped too.
helper=${JOULEBOOK_GPU_MAP_HELPER:-/usr/libexec/joulebook/joulebook-gpu-map}
if [ ! -r "$helper" ]; then
    logger -t joulebook-gpu-map "$helper is missing: GPU mapping not updated" 2>/dev/null
    echo "joulebook-gpu-map: $helper is missing: GPU mapping not updated" >&2
    exit 0
fi
exec /bin/sh "$helper" slurm-prolog
