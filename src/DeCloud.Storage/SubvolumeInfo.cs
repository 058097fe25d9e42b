namespace DeCloud.Storage;

/// <summary>One Btrfs subvolume or snapshot directly under a <see cref="BtrfsVolumes"/> root.</summary>
/// <param name="Name">Its name (one path component under the root).</param>
/// <param name="Path">Its absolute path.</param>
/// <param name="Id">The Btrfs subvolume id (its qgroup is <c>0/Id</c>).</param>
/// <param name="Generation">The last transaction that changed it.</param>
/// <param name="Uuid">Its own UUID.</param>
/// <param name="ParentUuid">For a snapshot, the UUID of the subvolume it was taken from.</param>
/// <param name="ReceivedUuid">For a received subvolume, the UUID of the snapshot it was sent from; set only once a receive completed.</param>
/// <param name="IsReadOnly">True for read-only snapshots (and completed receives).</param>
public sealed record SubvolumeInfo(
    string Name,
    string Path,
    long Id,
    long Generation,
    Guid Uuid,
    Guid? ParentUuid,
    Guid? ReceivedUuid,
    bool IsReadOnly);

/// <summary>Space used by a subvolume, from its qgroup <c>0/id</c>.</summary>
/// <param name="ReferencedBytes">Bytes the subvolume references (shared with snapshots or not).</param>
/// <param name="ExclusiveBytes">Bytes only this subvolume references.</param>
/// <param name="LimitBytes">The referenced-bytes limit, or null when unlimited.</param>
public sealed record QuotaUsage(long ReferencedBytes, long ExclusiveBytes, long? LimitBytes);
