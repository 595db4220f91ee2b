"""Upload and download with the ovirt-imageio client, as oVirt's upload_disk.py and
download_disk.py do it: the SDK makes the disk and the transfer, the client moves guest data
(format=raw transfers: a qcow2 source is read as what a guest sees), the SDK finalizes."""
import os
import subprocess
import time

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
from ovirt_imageio import client

from conftest import wait_for, unique

SIZE = 64 * 2**20


def qemu_io(path, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    subprocess.run(args + [path], check=True, capture_output=True)


@pytest.fixture(scope="module")
def source(workdir):
    """A qcow2 image with known data: patterns, an explicit zero range, and holes."""
    path = os.path.join(workdir, "source.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(SIZE)], check=True)
    qemu_io(path, "write -P 0xab 0 1M", "write -P 0x5c 10M 3M", "write -z 20M 1M",
            "write -P 0x11 63M 1M")
    return path


@pytest.fixture(scope="module")
def setup(system, agents, workdir):
    """A real host in a local data center with a localfs data domain."""
    agent = agents.start(simulate=False)
    dcs = system.data_centers_service()
    dc = dcs.add(types.DataCenter(name=unique("xfer"), local=True))
    cl = system.clusters_service().add(types.Cluster(
        name=unique("xfer"), data_center=types.DataCenter(id=dc.id),
        cpu=types.Cpu(architecture=types.Architecture.X86_64, type="Intel Nehalem Family")))
    host = system.hosts_service().add(types.Host(
        name=unique("xfer"), address=agent["address"], port=agent["port"],
        root_password=agent["secret"], cluster=types.Cluster(id=cl.id)))
    hs = system.hosts_service().host_service(host.id)
    wait_for("host up", lambda: hs.get().status == types.HostStatus.UP, seconds=180)
    path = os.path.join(workdir, "localfs-xfer")
    os.makedirs(path)
    sd = system.storage_domains_service().add(types.StorageDomain(
        name=unique("xfer"), type=types.StorageDomainType.DATA,
        storage=types.HostStorage(type=types.StorageType.LOCALFS, path=path),
        host=types.Host(id=host.id)))
    dcs.data_center_service(dc.id).storage_domains_service().add(types.StorageDomain(id=sd.id))
    asd = dcs.data_center_service(dc.id).storage_domains_service().storage_domain_service(sd.id)
    wait_for("domain active", lambda: asd.get().status == types.StorageDomainStatus.ACTIVE)
    return {"sd": sd, "path": path, "host": host}


def start_transfer(system, disk, direction):
    transfers = system.image_transfers_service()
    t = transfers.add(types.ImageTransfer(
        disk=types.Disk(id=disk.id), direction=direction, format=types.DiskFormat.RAW))
    ts = transfers.image_transfer_service(t.id)
    t = wait_for("transferring", lambda: (lambda x: x if x.phase == types.ImageTransferPhase.TRANSFERRING else None)(ts.get()),
                 seconds=60)
    assert t.transfer_url and t.proxy_url, t
    return t, ts


def finalize(ts):
    ts.finalize()
    # oVirt 4.4.7+: the transfer stays and ends in finished_success (the SDK helper's loop).
    deadline = time.time() + 60
    while True:
        phase = ts.get().phase
        if phase == types.ImageTransferPhase.FINISHED_SUCCESS:
            return
        assert phase != types.ImageTransferPhase.FINISHED_FAILURE, "the transfer failed"
        assert time.time() < deadline, "finalizing took too long: %s" % phase
        time.sleep(0.5)


def volume_formats(root, disk_id):
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if disk_id in d and not f.endswith((".meta", ".lease")):
                info = subprocess.run(["qemu-img", "info", "--output=json", os.path.join(d, f)],
                                      capture_output=True, text=True, check=True).stdout
                out.append(info)
    return out


@pytest.mark.parametrize("disk_format,via_proxy", [
    (types.DiskFormat.COW, False),
    (types.DiskFormat.RAW, True),
])
def test_upload_then_download_guest_data(system, engine, setup, source, workdir, disk_format, via_proxy):
    disks = system.disks_service()
    disk = disks.add(types.Disk(
        name=unique("img"), format=disk_format, provisioned_size=SIZE,
        sparse=True, storage_domains=[types.StorageDomain(id=setup["sd"].id)]))
    ds = disks.disk_service(disk.id)
    wait_for("disk ok", lambda: ds.get().status == types.DiskStatus.OK)

    t, ts = start_transfer(system, disk, types.ImageTransferDirection.UPLOAD)
    assert ds.get().status == types.DiskStatus.LOCKED
    if via_proxy:
        # Only the engine's proxy: the client never talks to the host itself.
        client.upload(source, t.proxy_url, engine.ca)
    else:
        client.upload(source, t.transfer_url, engine.ca, proxy_url=t.proxy_url)
    # The engine reads progress from the host at its next poll.
    wait_for("transferred", lambda: ts.get().transferred > 0, seconds=10)
    finalize(ts)
    wait_for("disk ok", lambda: ds.get().status == types.DiskStatus.OK)
    assert ds.get().actual_size > 0
    want = "qcow2" if disk_format == types.DiskFormat.COW else "raw"
    assert any('"format": "%s"' % want in i for i in volume_formats(setup["path"], disk.id))

    t, ts = start_transfer(system, disk, types.ImageTransferDirection.DOWNLOAD)
    target = os.path.join(workdir, "download-%s.qcow2" % disk.id[:8])
    client.download(t.transfer_url, target, engine.ca, fmt="qcow2", proxy_url=t.proxy_url)
    finalize(ts)
    wait_for("disk ok", lambda: ds.get().status == types.DiskStatus.OK)

    # The guest sees the same bytes in both images.
    r = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", source, target],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ds.remove()


def test_cancelled_upload_removes_the_disk(system, setup):
    disks = system.disks_service()
    disk = disks.add(types.Disk(
        name=unique("cancel"), format=types.DiskFormat.COW, provisioned_size=SIZE,
        storage_domains=[types.StorageDomain(id=setup["sd"].id)]))
    ds = disks.disk_service(disk.id)
    wait_for("disk ok", lambda: ds.get().status == types.DiskStatus.OK)
    t, ts = start_transfer(system, disk, types.ImageTransferDirection.UPLOAD)
    ts.cancel()
    wait_for("finished_failure", lambda: ts.get().phase == types.ImageTransferPhase.FINISHED_FAILURE)

    def gone():
        try:
            ds.get()
            return False
        except sdk.NotFoundError:
            return True
    wait_for("disk removed", gone, seconds=30)
