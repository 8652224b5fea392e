"""runc, given only the capabilities this host can grant: dockerd's runtime where the bounding set lacks some.

Written out by ``engine`` as a standalone script (``REAL_RUNC`` set above this text): dockerd calls it with
runc's own arguments. ``create``/``run`` read the bundle's config.json and ``exec`` its ``--process`` file;
capabilities outside this process's bounding set are taken out of them, then the real runc runs.
"""

import json
import os
import sys


def bounding_set(status_text):
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return (1 << 64) - 1


def grantable(names, bounding):
    """The names (``CAP_SYS_ADMIN``…) whose bit is in ``bounding``; unknown names are kept."""
    numbers = {name: bit for bit, name in enumerate(CAPABILITY_NAMES)}
    return [n for n in names if n not in numbers or bounding >> numbers[n] & 1]


def filter_capabilities(caps, bounding):
    return {kind: grantable(names, bounding) for kind, names in caps.items()} if isinstance(caps, dict) else caps


def spec_files(args):
    """The JSON files this runc call starts a process from: (path, whether it is a whole bundle spec)."""
    found, previous = [], ""
    for arg in args:
        if previous in ("--bundle", "-b"):
            found.append((os.path.join(arg, "config.json"), True))
        elif previous in ("--process", "-p"):
            found.append((arg, False))
        elif arg.startswith("--bundle="):
            found.append((os.path.join(arg.split("=", 1)[1], "config.json"), True))
        elif arg.startswith("--process="):
            found.append((arg.split("=", 1)[1], False))
        previous = arg
    return found


def rewrite(path, whole, bounding):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return
    holder = data.get("process", {}) if whole else data
    if "capabilities" not in holder:
        return
    holder["capabilities"] = filter_capabilities(holder["capabilities"], bounding)
    with open(path + ".caps", "w") as f:
        json.dump(data, f)
    os.replace(path + ".caps", path)


CAPABILITY_NAMES = [f"CAP_{n}" for n in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE")]


if __name__ == "__main__":
    with open("/proc/self/status") as status:
        mask = bounding_set(status.read())
    for spec, whole_spec in spec_files(sys.argv[1:]):
        rewrite(spec, whole_spec, mask)
    real = globals().get("REAL_RUNC", "/usr/sbin/runc")
    os.execv(real, [real, *sys.argv[1:]])
