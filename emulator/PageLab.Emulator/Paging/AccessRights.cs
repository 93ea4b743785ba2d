using System.Runtime.CompilerServices;

namespace PageLab.Emulator.Paging;

/// <summary>
/// The access rights of a translation, combined across every level of the walk (Intel SDM 4.6):
/// R/W and U/S are the AND of all levels, XD the OR. Together with the leaf's D and G bits and its
/// protection key this is what a TLB entry caches.
/// </summary>
[Flags]
public enum TranslationAttributes : byte
{
    None = 0,
    Writable = 1 << 0,
    User = 1 << 1,
    ExecuteDisable = 1 << 2,
    /// <summary>The leaf's D bit was set when the entry was cached; a write through a clean entry walks again.</summary>
    Dirty = 1 << 3,
    /// <summary>The leaf had G = 1 while CR4.PGE = 1.</summary>
    Global = 1 << 4,
}

/// <summary>The state the access checks read: control bits, privilege, EFLAGS.AC, PKRU.</summary>
public readonly record struct AccessContext(ControlFlags Flags, bool UserMode, bool AlignmentCheck, uint Pkru);

/// <summary>The permission rules of Intel SDM Vol. 3A 4.6 (access rights) and 4.6.2 (protection keys).</summary>
public static class AccessRights
{
    /// <summary>The error-code bits every #PF of this access carries: W/R, U/S and (with NXE or SMEP) I/D.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PageFaultErrorCode BaseErrorCode(AccessKind kind, in AccessContext context)
    {
        var code = PageFaultErrorCode.None;
        if (kind == AccessKind.Write) code |= PageFaultErrorCode.Write;
        if (context.UserMode) code |= PageFaultErrorCode.User;
        if (kind == AccessKind.Fetch && (context.Flags & (ControlFlags.NoExecuteEnable | ControlFlags.Smep)) != 0)
            code |= PageFaultErrorCode.InstructionFetch;
        return code;
    }

    /// <summary>
    /// Checks an access against a translation's combined rights. Returns <see cref="PageFaultErrorCode.None"/>
    /// when allowed, otherwise the full #PF error code of a protection violation (P = 1).
    /// </summary>
    public static PageFaultErrorCode Check(TranslationAttributes attributes, int protectionKey, AccessKind kind, in AccessContext context)
    {
        bool userPage = (attributes & TranslationAttributes.User) != 0;
        bool writable = (attributes & TranslationAttributes.Writable) != 0;
        ControlFlags flags = context.Flags;
        bool violation;
        switch (kind)
        {
            case AccessKind.Fetch:
                violation = ((flags & ControlFlags.NoExecuteEnable) != 0 && (attributes & TranslationAttributes.ExecuteDisable) != 0)
                    || (context.UserMode ? !userPage : userPage && (flags & ControlFlags.Smep) != 0);
                break;
            case AccessKind.Read:
                violation = context.UserMode ? !userPage : userPage && SmapForbids(context);
                break;
            default:
                violation = context.UserMode
                    ? !userPage || !writable
                    : (userPage && SmapForbids(context)) || (!writable && (flags & ControlFlags.WriteProtect) != 0);
                break;
        }
        // SDM 4.7: PK reports that the key forbids the access, whether or not the ordinary rights forbid it too.
        bool keyForbids = kind != AccessKind.Fetch && userPage && (flags & ControlFlags.ProtectionKeys) != 0
            && ProtectionKeyForbids(protectionKey, kind, context);
        if (!violation && !keyForbids)
            return PageFaultErrorCode.None;
        var error = BaseErrorCode(kind, context) | PageFaultErrorCode.Present;
        return keyForbids ? error | PageFaultErrorCode.ProtectionKey : error;
    }

    /// <summary>SMAP: a supervisor data access to a user page faults unless EFLAGS.AC = 1 (explicit accesses).</summary>
    static bool SmapForbids(in AccessContext context) =>
        (context.Flags & ControlFlags.Smap) != 0 && !context.AlignmentCheck;

    /// <summary>PKRU holds two bits per key: AD (bit 2k) forbids data access, WD (bit 2k+1) forbids writes
    /// (for supervisor accesses only when CR0.WP = 1).</summary>
    static bool ProtectionKeyForbids(int key, AccessKind kind, in AccessContext context)
    {
        uint bits = context.Pkru >> (2 * key);
        if ((bits & 1) != 0) return true;
        return kind == AccessKind.Write && (bits & 2) != 0
            && (context.UserMode || (context.Flags & ControlFlags.WriteProtect) != 0);
    }
}
