#!/bin/sh
# Slurm Prolog (slurmd, as root, on each node of the job): records the GPUs the job holds for
# joulebook-exporter (--jobs.gpu-mapping-dir), and the job's record (--jobs.record-dir: user,
# uid, account, partition, name, SLUID, GPUs as slurmd gives them; docs/job-identity.md), so
# that the exporter never takes them from the job's own environment. In slurm.conf:
#   Prolog=/etc/slurm/prolog.d/*     (or this file's path; Slurm runs every matching script)
# slurmd sets the Prolog's environment (SLURM_JOB_ID, SLURM_JOB_GPUS, SLURM_JOB_USER, ...);
# nothing in it comes from the job's user.
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
