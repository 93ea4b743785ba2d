using PageLab.Kernel.Loader;

namespace PageLab.Kernel.Fs;

/// <summary>The host user's identity, which a guest inherits (as under qemu-user).</summary>
public static class HostIdentity
{
    public static Credentials Current() =>
        new(HostInterop.GetUid(), HostInterop.GetEuid(), HostInterop.GetGid(), HostInterop.GetEgid());
}
