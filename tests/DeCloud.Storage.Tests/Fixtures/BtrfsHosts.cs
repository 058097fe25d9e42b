namespace DeCloud.Storage.Tests.Fixtures;

/// <summary>
/// Two loop-mounted Btrfs filesystems standing for two hosts, shared by the whole test assembly.
/// Each test makes its own roots and volume names, so tests never see each other's volumes.
/// Created on first use (so a developer box without root skips instead of failing the fixture).
/// </summary>
public sealed class BtrfsHosts : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private LoopBtrfs? _a;
    private LoopBtrfs? _b;

    /// <summary>Filesystems of 2 GiB (sparse), so moves of tens of MiB never run out of space.</summary>
    public const long Size = 2L << 30;

    public async Task<(LoopBtrfs A, LoopBtrfs B)> GetAsync()
    {
        LoopBtrfs.Require();
        await _gate.WaitAsync();
        try
        {
            if (_a is null)
            {
                await LoopBtrfs.CleanLeftovers();
                _a = await LoopBtrfs.CreateAsync(Size);
                _b = await LoopBtrfs.CreateAsync(Size);
            }

            return (_a, _b!);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Two fresh volume sets (host A source, host B destination) in new directories.</summary>
    public async Task<(BtrfsVolumes Source, BtrfsVolumes Destination)> NewPairAsync()
    {
        var (a, b) = await GetAsync();
        var id = Guid.NewGuid().ToString("N")[..8];
        return (new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = a.NewRoot("src-" + id) }),
                new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = b.NewRoot("dst-" + id) }));
    }

    public async ValueTask DisposeAsync()
    {
        if (_a is not null)
        {
            await _a.DisposeAsync();
        }

        if (_b is not null)
        {
            await _b.DisposeAsync();
        }

        _gate.Dispose();
    }
}
