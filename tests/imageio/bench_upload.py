"""Upload throughput as users see it: the ovirt-imageio client uploading a raw image of
random data through a real `vireo serve` + `vireo agent` (TLS, qemu-nbd) into a disk on a
localfs domain, against `cp` + `sync -d` (fdatasync, as the upload ends with a flush) of the
same file into the same folder. The source is read before each case (page cache alike), each
run measures the copy and both uploads (interleaved), and medians of VIREO_BENCH_RUNS (default
3) runs are printed, with CPU seconds per GiB of the engine, the agent (with its qemu-nbd) and
the client (with the qemu-nbd it reads its source through).

    VIREO_BIN=target/release/vireo target/conformance-venv/bin/python tests/imageio/bench_upload.py

VIREO_BENCH_MIB (default 1024) sets the size; VIREO_BENCH_DIR the folder (default /tmp)."""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import conftest  # noqa: E402  (the shared suite's Engine and Agents)

import ovirtsdk4.types as types  # noqa: E402
from ovirt_imageio import client  # noqa: E402

MIB = int(os.environ.get("VIREO_BENCH_MIB", "1024"))
RUNS = int(os.environ.get("VIREO_BENCH_RUNS", "3"))
SIZE = MIB * 2**20


def wait(what, fn, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise RuntimeError("timed out waiting for " + what)


def warm(path):
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def median(v):
    return sorted(v)[len(v) // 2]


def cpu(pid):
    """CPU seconds of a process and its reaped children (qemu-nbd of the agent)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def client_cpu():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main():
    root = tempfile.mkdtemp(prefix="vireo-xfer-bench-", dir=os.environ.get("VIREO_BENCH_DIR", "/tmp"))
    shared = conftest.shared
    engine = shared.Engine(root)
    agents = shared.Agents(root)
    try:
        src = os.path.join(root, "source.raw")
        with open(src, "wb") as f:
            for _ in range(MIB):
                f.write(os.urandom(2**20))
        domain_dir = os.path.join(root, "localfs")
        os.makedirs(domain_dir)

        conn = engine.connection()
        system = conn.system_service()
        agent = agents.start(simulate=False)
        dc = system.data_centers_service().add(types.DataCenter(name="bench", local=True))
        cl = system.clusters_service().add(types.Cluster(
            name="bench", data_center=types.DataCenter(id=dc.id),
            cpu=types.Cpu(architecture=types.Architecture.X86_64, type="Intel Nehalem Family")))
        host = system.hosts_service().add(types.Host(
            name="bench", address=agent["address"], port=agent["port"],
            root_password=agent["secret"], cluster=types.Cluster(id=cl.id)))
        hs = system.hosts_service().host_service(host.id)
        wait("host up", lambda: hs.get().status == types.HostStatus.UP)
        sd = system.storage_domains_service().add(types.StorageDomain(
            name="bench", type=types.StorageDomainType.DATA,
            storage=types.HostStorage(type=types.StorageType.LOCALFS, path=domain_dir),
            host=types.Host(id=host.id)))
        sds = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        sds.add(types.StorageDomain(id=sd.id))
        wait("domain active", lambda: sds.storage_domain_service(sd.id).get().status == types.StorageDomainStatus.ACTIVE)

        print("image upload with the ovirt-imageio client: %d MiB in %s, median of %d runs" % (MIB, root, RUNS))
        gib = MIB / 1024
        copies, cases = [], {}
        for _ in range(RUNS):
            copy = os.path.join(domain_dir, "copy.raw")
            warm(src)
            t = time.monotonic()
            subprocess.run(["cp", src, copy], check=True)
            subprocess.run(["sync", "-d", copy], check=True)
            copies.append(time.monotonic() - t)
            os.unlink(copy)
            for fmt in (types.DiskFormat.RAW, types.DiskFormat.COW):
                disk = system.disks_service().add(types.Disk(
                    name="bench-%s" % fmt.value, format=fmt, provisioned_size=SIZE, sparse=True,
                    storage_domains=[types.StorageDomain(id=sd.id)]))
                ds = system.disks_service().disk_service(disk.id)
                wait("disk ok", lambda: ds.get().status == types.DiskStatus.OK)
                ts_ = system.image_transfers_service()
                tr = ts_.add(types.ImageTransfer(disk=types.Disk(id=disk.id),
                                                 direction=types.ImageTransferDirection.UPLOAD,
                                                 format=types.DiskFormat.RAW))
                ts = ts_.image_transfer_service(tr.id)
                tr = wait("transferring", lambda: (lambda x: x if x.phase == types.ImageTransferPhase.TRANSFERRING else None)(ts.get()))
                warm(src)
                before = (cpu(engine.proc.proc.pid), cpu(agent["proc"].proc.pid), client_cpu())
                t = time.monotonic()
                client.upload(src, tr.transfer_url, engine.ca, proxy_url=tr.proxy_url)
                up_s = time.monotonic() - t
                agent_up = cpu(agent["proc"].proc.pid) - before[1]
                ts.finalize()
                wait("finished", lambda: ts.get().phase == types.ImageTransferPhase.FINISHED_SUCCESS)
                after = (cpu(engine.proc.proc.pid), cpu(agent["proc"].proc.pid), client_cpu())
                cases.setdefault(fmt.value, []).append((up_s,) + tuple(a - b for a, b in zip(after, before)) + (agent_up,))
                ds.remove()
        cp_s = median(copies)
        print("  cp + sync -d                   %8.0f MiB/s  (%.2f s)" % (MIB / cp_s, cp_s))
        for fmt, rs in cases.items():
            up_s = median([r[0] for r in rs])
            e, a, c, au = (median([r[i] for r in rs]) / gib for i in (1, 2, 3, 4))
            # The agent's qemu-nbd is reaped (and counted) when finalize removes the ticket;
            # upload to finished also has the agent's verification of the image.
            print("  client.upload raw -> %-5s      %8.0f MiB/s  (%.2f s)  = %.0f%% of cp;"
                  "  CPU s/GiB: client %.2f, agent %.2f during the upload;"
                  " upload to finished: engine %.2f, agent+qemu-nbd+verify %.2f"
                  % (fmt, MIB / up_s, up_s, 100 * cp_s / up_s, c, au, e, a))
        conn.close()
    finally:
        agents.stop()
        engine.proc.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
