/*
 * A fake libnvidia-ml.so for joulebook's tests. It defines only the NVML symbols that
 * nvml-wrapper 0.13 calls for the API joulebook uses (nvml-wrapper resolves each symbol lazily,
 * on first call, so a missing symbol only matters if it is called):
 *
 *   nvmlInit_v2, nvmlInitWithFlags, nvmlShutdown, nvmlErrorString, nvmlSystemGetDriverVersion,
 *   nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetIndex, nvmlDeviceGetUUID,
 *   nvmlDeviceGetName, nvmlDeviceGetPciInfo_v3, nvmlDeviceGetMinorNumber,
 *   nvmlDeviceGetTotalEnergyConsumption, nvmlDeviceGetPowerUsage,
 *   nvmlDeviceGetEnforcedPowerLimit, nvmlDeviceGetComputeRunningProcesses_v3,
 *   nvmlDeviceGetGraphicsRunningProcesses_v3, and for MIG: nvmlDeviceGetMigMode,
 *   nvmlDeviceGetMaxMigDeviceCount, nvmlDeviceGetMigDeviceHandleByIndex,
 *   nvmlDeviceGetGpuInstanceId, nvmlDeviceGetAttributes_v2 (multiprocessorCount), and
 *   nvmlDeviceGetUUID on a MIG device handle
 *
 * Build: cc -shared -fPIC -O1 -o libnvidia-ml.so.1 fake_nvml.c
 *
 * STATE FILE
 * ----------
 * The fake's GPUs come from the text file named by the environment variable FAKE_NVML_STATE. The
 * file is re-read on every call, so a test changes the GPUs between two samples by rewriting it
 * (write a temporary file and rename it over the old one, so no call sees half a file).
 *
 * One `key=value` per line; blank lines and lines starting with `#` are ignored; spaces around the
 * key and the value are trimmed; the value runs to the end of the line (it may contain spaces).
 * Lines before the first `[gpu]` line are global; each `[gpu]` line starts the next GPU (index 0,
 * 1, ...; at most 16), and the lines after it describe that GPU.
 *
 * Any value may be `!NAME`, where NAME is an NVML error: the call that reads that value returns
 * that error. Names: uninitialized, invalid_argument, not_supported, no_permission, not_found,
 * insufficient_size, driver_not_loaded, gpu_is_lost, reset_required, lib_rm_version_mismatch,
 * unknown.
 *
 * Global keys:
 *   init=ok | !ERROR        result of nvmlInit_v2 / nvmlInitWithFlags (default ok)
 *   count=!ERROR            make nvmlDeviceGetCount_v2 fail (default: number of [gpu] blocks)
 *   driver_version=STRING   nvmlSystemGetDriverVersion (default 550.00.fake)
 *
 * GPU keys (for the GPU of the preceding `[gpu]` line):
 *   uuid=STRING            nvmlDeviceGetUUID        (default GPU-fake-<index>)
 *   name=STRING            nvmlDeviceGetName        (default Fake GPU)
 *   bus_id=STRING          nvmlDeviceGetPciInfo_v3  (default 00000000:<index+1, hex>:00.0)
 *   minor=N                nvmlDeviceGetMinorNumber (default <index>)
 *   energy_mj=N            nvmlDeviceGetTotalEnergyConsumption, millijoules (default !not_supported)
 *   power_mw=N             nvmlDeviceGetPowerUsage, milliwatts (default !not_supported)
 *   limit_mw=N             nvmlDeviceGetEnforcedPowerLimit, milliwatts (default !not_supported)
 *   compute_pids=P,P,...   nvmlDeviceGetComputeRunningProcesses_v3 (default none)
 *   graphics_pids=P,P,...  nvmlDeviceGetGraphicsRunningProcesses_v3 (default none)
 *   lost=1                 every call on this GPU returns NVML_ERROR_GPU_IS_LOST ("fell off the
 *                          bus"); getting its handle still works, as it does with the real library
 *   sms=N                  nvmlDeviceGetAttributes_v2's multiprocessorCount (default !not_supported)
 *   mig=0|1                nvmlDeviceGetMigMode's current mode (default: !not_supported, a GPU
 *                          without MIG); nvmlDeviceGetMaxMigDeviceCount is 7 when set
 *   mig_instance=GI SMS UUID  one MIG device (at most 7, in order: MIG device index 0, 1, ...):
 *                          its GPU instance id, its multiprocessorCount and its UUID (MIG-...).
 *                          A MIG device handle is 0x10000 + 16 * GPU index + MIG index; the calls
 *                          above on it answer for the instance.
 *
 * Example:
 *   init=ok
 *   [gpu]
 *   uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000
 *   name=NVIDIA H100 80GB HBM3
 *   bus_id=00000000:17:00.0
 *   energy_mj=123456
 *   power_mw=250000
 *   limit_mw=700000
 *
 * A missing FAKE_NVML_STATE or an unreadable file behaves like a node without the kernel module:
 * init returns NVML_ERROR_DRIVER_NOT_LOADED and every other call NVML_ERROR_UNKNOWN.
 *
 * Like the real library, the fake counts nvmlInit / nvmlShutdown: every call other than init made
 * while it is not initialised returns NVML_ERROR_UNINITIALIZED.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stddef.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_RESET_REQUIRED 16
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH 18
#define NVML_ERROR_UNKNOWN 999

/* Layouts as in nvml.h (and nvml-wrapper-sys's bindings). */
typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

#define MAX_GPUS 16
#define MAX_MIG 7
#define MIG_HANDLE_BASE 0x10000
#define MAX_PIDS 64
#define STR_LEN 96

/* One value of the state file: an error code, or a string and its number. */
typedef struct {
    int err;
    char str[STR_LEN];
    unsigned long long num;
} field_t;

typedef struct {
    unsigned int gi, sms;
    char uuid[STR_LEN];
} mig_t;

typedef struct {
    field_t uuid, name, bus_id, minor, energy_mj, power_mw, limit_mw;
    field_t compute_pids, graphics_pids;
    field_t sms, mig;
    int lost;
    int mig_count;
    mig_t migs[MAX_MIG];
} gpu_t;

/* nvmlDeviceAttributes_t, as in nvml.h. */
typedef struct {
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
        sharedEncoderCount, sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount,
        computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;

typedef struct {
    int ok; /* 0 when the state file is missing or unreadable */
    field_t init, count, driver_version;
    int gpu_count;
    gpu_t gpus[MAX_GPUS];
} state_t;

static int init_refcount = 0;

static const struct {
    const char *name;
    int code;
} ERRORS[] = {
    {"uninitialized", NVML_ERROR_UNINITIALIZED},
    {"invalid_argument", NVML_ERROR_INVALID_ARGUMENT},
    {"not_supported", NVML_ERROR_NOT_SUPPORTED},
    {"no_permission", NVML_ERROR_NO_PERMISSION},
    {"not_found", NVML_ERROR_NOT_FOUND},
    {"insufficient_size", NVML_ERROR_INSUFFICIENT_SIZE},
    {"driver_not_loaded", NVML_ERROR_DRIVER_NOT_LOADED},
    {"gpu_is_lost", NVML_ERROR_GPU_IS_LOST},
    {"reset_required", NVML_ERROR_RESET_REQUIRED},
    {"lib_rm_version_mismatch", NVML_ERROR_LIB_RM_VERSION_MISMATCH},
    {"unknown", NVML_ERROR_UNKNOWN},
};

static void set_str(field_t *f, const char *s) {
    f->err = NVML_SUCCESS;
    snprintf(f->str, sizeof f->str, "%s", s);
    f->num = strtoull(s, NULL, 10);
}

static void set_err(field_t *f, int err) {
    f->err = err;
    f->str[0] = '\0';
    f->num = 0;
}

static void set_value(field_t *f, const char *value) {
    if (value[0] == '!') {
        size_t i;
        for (i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++) {
            if (strcmp(value + 1, ERRORS[i].name) == 0) {
                set_err(f, ERRORS[i].code);
                return;
            }
        }
        set_err(f, NVML_ERROR_UNKNOWN);
        return;
    }
    set_str(f, value);
}

static char *trim(char *s) {
    char *end;
    while (*s == ' ' || *s == '\t') s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) end--;
    *end = '\0';
    return s;
}

static void default_gpu(gpu_t *g, int index) {
    char buf[STR_LEN];
    memset(g, 0, sizeof *g);
    snprintf(buf, sizeof buf, "GPU-fake-%d", index);
    set_str(&g->uuid, buf);
    set_str(&g->name, "Fake GPU");
    snprintf(buf, sizeof buf, "00000000:%02X:00.0", (unsigned)(index + 1));
    set_str(&g->bus_id, buf);
    snprintf(buf, sizeof buf, "%d", index);
    set_str(&g->minor, buf);
    set_err(&g->energy_mj, NVML_ERROR_NOT_SUPPORTED);
    set_err(&g->power_mw, NVML_ERROR_NOT_SUPPORTED);
    set_err(&g->limit_mw, NVML_ERROR_NOT_SUPPORTED);
    set_str(&g->compute_pids, "");
    set_str(&g->graphics_pids, "");
    set_err(&g->sms, NVML_ERROR_NOT_SUPPORTED);
    set_err(&g->mig, NVML_ERROR_NOT_SUPPORTED);
}

static void load_state(state_t *st) {
    const char *path = getenv("FAKE_NVML_STATE");
    FILE *f;
    char line[512];
    gpu_t *g = NULL;

    memset(st, 0, sizeof *st);
    set_str(&st->init, "ok");
    set_str(&st->count, "");
    set_str(&st->driver_version, "550.00.fake");
    if (path == NULL || (f = fopen(path, "r")) == NULL) return;
    st->ok = 1;
    while (fgets(line, sizeof line, f) != NULL) {
        char *l = trim(line), *eq, *key, *value;
        if (*l == '\0' || *l == '#') continue;
        if (strcmp(l, "[gpu]") == 0) {
            if (st->gpu_count >= MAX_GPUS) {
                g = NULL;
                continue;
            }
            g = &st->gpus[st->gpu_count];
            default_gpu(g, st->gpu_count);
            st->gpu_count++;
            continue;
        }
        eq = strchr(l, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        key = trim(l);
        value = trim(eq + 1);
        if (g == NULL) {
            if (strcmp(key, "init") == 0) set_value(&st->init, value);
            else if (strcmp(key, "count") == 0) set_value(&st->count, value);
            else if (strcmp(key, "driver_version") == 0) set_value(&st->driver_version, value);
            continue;
        }
        if (strcmp(key, "uuid") == 0) set_value(&g->uuid, value);
        else if (strcmp(key, "name") == 0) set_value(&g->name, value);
        else if (strcmp(key, "bus_id") == 0) set_value(&g->bus_id, value);
        else if (strcmp(key, "minor") == 0) set_value(&g->minor, value);
        else if (strcmp(key, "energy_mj") == 0) set_value(&g->energy_mj, value);
        else if (strcmp(key, "power_mw") == 0) set_value(&g->power_mw, value);
        else if (strcmp(key, "limit_mw") == 0) set_value(&g->limit_mw, value);
        else if (strcmp(key, "compute_pids") == 0) set_value(&g->compute_pids, value);
        else if (strcmp(key, "graphics_pids") == 0) set_value(&g->graphics_pids, value);
        else if (strcmp(key, "lost") == 0) g->lost = strcmp(value, "0") != 0;
        else if (strcmp(key, "sms") == 0) set_value(&g->sms, value);
        else if (strcmp(key, "mig") == 0) set_value(&g->mig, value);
        else if (strcmp(key, "mig_instance") == 0 && g->mig_count < MAX_MIG) {
            mig_t *m = &g->migs[g->mig_count];
            if (sscanf(value, "%u %u %95s", &m->gi, &m->sms, m->uuid) == 3) g->mig_count++;
        }
    }
    fclose(f);
}

/* Copies a string into a caller's buffer of `length` bytes, as NVML does. */
static nvmlReturn_t copy_out(const char *s, char *out, unsigned int length) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

/* Loads the state and finds the GPU behind a handle; sets *ret when the call must fail. A MIG
 * device handle finds its parent GPU and sets *mig to the instance (else *mig is NULL). */
static gpu_t *lookup_mig(state_t *st, nvmlDevice_t device, nvmlReturn_t *ret, mig_t **mig) {
    uintptr_t index = (uintptr_t)device;
    uintptr_t k = 0;
    int is_mig = index >= MIG_HANDLE_BASE;
    if (is_mig) {
        k = (index - MIG_HANDLE_BASE) % 16;
        index = (index - MIG_HANDLE_BASE) / 16 + 1;
    }
    *mig = NULL;
    load_state(st);
    if (init_refcount <= 0) {
        *ret = NVML_ERROR_UNINITIALIZED;
        return NULL;
    }
    if (!st->ok) {
        *ret = NVML_ERROR_UNKNOWN;
        return NULL;
    }
    if (index == 0 || index > (uintptr_t)st->gpu_count) {
        *ret = NVML_ERROR_INVALID_ARGUMENT;
        return NULL;
    }
    if (st->gpus[index - 1].lost) {
        *ret = NVML_ERROR_GPU_IS_LOST;
        return NULL;
    }
    if (is_mig) {
        if (k >= (uintptr_t)st->gpus[index - 1].mig_count) {
            *ret = NVML_ERROR_INVALID_ARGUMENT;
            return NULL;
        }
        *mig = &st->gpus[index - 1].migs[k];
    }
    *ret = NVML_SUCCESS;
    return &st->gpus[index - 1];
}

/* A physical GPU's handle only. */
static gpu_t *lookup(state_t *st, nvmlDevice_t device, nvmlReturn_t *ret) {
    mig_t *mig;
    gpu_t *g = lookup_mig(st, device, ret, &mig);
    if (g != NULL && mig != NULL) {
        *ret = NVML_ERROR_NOT_SUPPORTED;
        return NULL;
    }
    return g;
}

static nvmlReturn_t do_init(void) {
    state_t st;
    load_state(&st);
    if (!st.ok) return NVML_ERROR_DRIVER_NOT_LOADED;
    if (st.init.err != NVML_SUCCESS) return st.init.err;
    init_refcount++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return do_init(); }

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return do_init();
}

nvmlReturn_t nvmlShutdown(void) {
    if (init_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    init_refcount--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    size_t i;
    if (result == NVML_SUCCESS) return "success";
    for (i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++) {
        if (ERRORS[i].code == result) return ERRORS[i].name;
    }
    return "unknown";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    state_t st;
    load_state(&st);
    if (init_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!st.ok) return NVML_ERROR_UNKNOWN;
    if (st.driver_version.err != NVML_SUCCESS) return st.driver_version.err;
    return copy_out(st.driver_version.str, version, length);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    state_t st;
    load_state(&st);
    if (init_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!st.ok) return NVML_ERROR_UNKNOWN;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (st.count.err != NVML_SUCCESS) return st.count.err;
    *count = (unsigned int)st.gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    state_t st;
    load_state(&st);
    if (init_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
    if (!st.ok) return NVML_ERROR_UNKNOWN;
    if (device == NULL || index >= (unsigned int)st.gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    /* The handle is the index + 1, so that no handle is NULL. */
    *device = (nvmlDevice_t)(uintptr_t)(index + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    if (g == NULL) return ret;
    if (index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)((uintptr_t)device - 1);
    return NVML_SUCCESS;
}

static nvmlReturn_t get_string(nvmlDevice_t device, size_t offset, char *out, unsigned int length) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    const field_t *f;
    if (g == NULL) return ret;
    f = (const field_t *)((const char *)g + offset);
    if (f->err != NVML_SUCCESS) return f->err;
    return copy_out(f->str, out, length);
}

static nvmlReturn_t get_number(nvmlDevice_t device, size_t offset, unsigned long long *out) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    const field_t *f;
    if (g == NULL) return ret;
    f = (const field_t *)((const char *)g + offset);
    if (f->err != NVML_SUCCESS) return f->err;
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *out = f->num;
    return NVML_SUCCESS;
}

static nvmlReturn_t get_uint(nvmlDevice_t device, size_t offset, unsigned int *out) {
    unsigned long long v = 0;
    nvmlReturn_t ret;
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    ret = get_number(device, offset, &v);
    if (ret == NVML_SUCCESS) *out = (unsigned int)v;
    return ret;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    if ((uintptr_t)device >= MIG_HANDLE_BASE) {
        state_t st;
        nvmlReturn_t ret;
        mig_t *mig;
        if (lookup_mig(&st, device, &ret, &mig) == NULL) return ret;
        return copy_out(mig->uuid, uuid, length);
    }
    return get_string(device, offsetof(gpu_t, uuid), uuid, length);
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    unsigned int mode = 0;
    nvmlReturn_t ret = get_uint(device, offsetof(gpu_t, mig), &mode);
    if (ret != NVML_SUCCESS) return ret;
    if (current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *current = mode;
    *pending = mode;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    unsigned int mode = 0;
    nvmlReturn_t ret = get_uint(device, offsetof(gpu_t, mig), &mode);
    if (ret != NVML_SUCCESS) return ret;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = MAX_MIG;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t *mig) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    if (g == NULL) return ret;
    if (g->mig.err != NVML_SUCCESS) return g->mig.err;
    if (mig == NULL || index >= MAX_MIG) return NVML_ERROR_INVALID_ARGUMENT;
    /* As the real library: an index without a MIG device is not found. */
    if (g->mig.num == 0 || index >= (unsigned int)g->mig_count) return NVML_ERROR_NOT_FOUND;
    *mig = (nvmlDevice_t)(uintptr_t)(MIG_HANDLE_BASE + 16 * ((uintptr_t)device - 1) + index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
    state_t st;
    nvmlReturn_t ret;
    mig_t *mig;
    if (lookup_mig(&st, device, &ret, &mig) == NULL) return ret;
    if (mig == NULL) return NVML_ERROR_NOT_SUPPORTED;
    if (id == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *id = mig->gi;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attrs) {
    state_t st;
    nvmlReturn_t ret;
    mig_t *mig;
    gpu_t *g = lookup_mig(&st, device, &ret, &mig);
    if (g == NULL) return ret;
    if (attrs == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memset(attrs, 0, sizeof *attrs);
    if (mig != NULL) {
        attrs->multiprocessorCount = mig->sms;
        return NVML_SUCCESS;
    }
    if (g->sms.err != NVML_SUCCESS) return g->sms.err;
    attrs->multiprocessorCount = (unsigned int)g->sms.num;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    return get_string(device, offsetof(gpu_t, name), name, length);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    if (g == NULL) return ret;
    if (g->bus_id.err != NVML_SUCCESS) return g->bus_id.err;
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    sscanf(g->bus_id.str, "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    pci->pciDeviceId = 0x233010de;
    pci->pciSubSystemId = 0x16c110de;
    snprintf(pci->busId, sizeof pci->busId, "%.31s", g->bus_id.str);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", domain & 0xffff, bus, dev,
             fn);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor) {
    return get_uint(device, offsetof(gpu_t, minor), minor);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    return get_number(device, offsetof(gpu_t, energy_mj), energy);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    return get_uint(device, offsetof(gpu_t, power_mw), power);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    return get_uint(device, offsetof(gpu_t, limit_mw), limit);
}

/* NVML's two-call protocol: with too small a buffer (or none), report the count needed and
 * return NVML_ERROR_INSUFFICIENT_SIZE; with no process, succeed with a count of 0. */
static nvmlReturn_t get_processes(nvmlDevice_t device, size_t offset, unsigned int *count,
                                  nvmlProcessInfo_t *infos) {
    state_t st;
    nvmlReturn_t ret;
    gpu_t *g = lookup(&st, device, &ret);
    const field_t *f;
    unsigned int pids[MAX_PIDS], n = 0, i;
    char *p, *end;
    if (g == NULL) return ret;
    f = (const field_t *)((const char *)g + offset);
    if (f->err != NVML_SUCCESS) return f->err;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    p = (char *)f->str;
    while (*p != '\0' && n < MAX_PIDS) {
        unsigned long v = strtoul(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        pids[n++] = (unsigned int)v;
        p = end;
    }
    if (infos == NULL || *count < n) {
        *count = n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (i = 0; i < n; i++) {
        infos[i].pid = pids[i];
        infos[i].usedGpuMemory = 1ULL << 30;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    return get_processes(device, offsetof(gpu_t, compute_pids), count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    return get_processes(device, offsetof(gpu_t, graphics_pids), count, infos);
}
