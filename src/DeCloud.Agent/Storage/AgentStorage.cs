using System.Globalization;
using DeCloud.Agent.Control;
using DeCloud.Agent.State;
using DeCloud.Protocol.V1;
using DeCloud.Storage;
using DeCloud.Storage.Backups;
using DeCloud.Storage.Moves;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Storage;

/// <summary>
/// The agent's storage commands through DeCloud.Storage, when it has a Btrfs root (<see cref="AgentOptions.StorageRoot"/>).
/// A command is answered IN_PROGRESS at once and runs in the background, one storage operation at a time; its final
/// ack (SUCCEEDED with the result, or FAILED with the reason) replaces the stored one and goes out on the control stream.
/// </summary>
internal sealed partial class AgentStorage : IAsyncDisposable
{
    private readonly AgentOptions _options;
    private readonly AgentState _state;
    private readonly AckOutbox _outbox;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly MoveTokenGate _moveGate;
    private readonly SemaphoreSlim _serial = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];
    private readonly BtrfsVolumes? _volumes;
    private readonly BtrfsVolumes? _backupTarget;
    private System.Net.Sockets.TcpListener? _listener;
    private VolumeReceiver? _receiver;

    public AgentStorage(IOptions<AgentOptions> options, AgentState state, AckOutbox outbox, MoveTokenGate moveGate, ILoggerFactory loggerFactory, TimeProvider time)
    {
        _moveGate = moveGate;
        _options = options.Value;
        _state = state;
        _outbox = outbox;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<AgentStorage>();
        _time = time;
        if (!string.IsNullOrWhiteSpace(_options.StorageRoot))
        {
            _volumes = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = _options.StorageRoot }, loggerFactory);
        }

        if (_volumes is not null && !string.IsNullOrWhiteSpace(_options.BackupRoot))
        {
            _backupTarget = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = _options.BackupRoot }, loggerFactory);
        }
    }

    /// <summary>The volumes under the agent's Btrfs root, or null when none is configured.</summary>
    public BtrfsVolumes? Volumes => _volumes;

    /// <summary>
    /// Validates a <c>take_backup</c> command and starts it; the caller answers IN_PROGRESS. Throws
    /// <see cref="ArgumentException"/> (REJECTED) when storage or a backup target is not configured or the input is bad.
    /// </summary>
    public void BeginBackup(Command command, string nodeId)
    {
        var b = command.TakeBackup;
        var volumes = _volumes ?? throw NotConfigured(command);
        var target = _backupTarget ?? throw new ArgumentException($"take_backup needs a backup target ({nameof(AgentOptions.BackupRoot)}, a folder on a second Btrfs filesystem); this agent has none configured.");
        var volume = string.IsNullOrEmpty(b.Volume) ? b.VmId : b.Volume;
        if (VolumeName.Check(volume) is { } problem)
        {
            throw new ArgumentException($"take_backup: volume '{volume}' is invalid: {problem}");
        }

        var backups = new VolumeBackups(volumes, target, new BackupOptions
        {
            ProjectId = TagOf(b.VmId, "vm"),
            HostId = TagOf(nodeId, "node")[..Math.Min(16, TagOf(nodeId, "node").Length)],
            SourceRetention = _options.BackupRetention,
            TargetRetention = _options.BackupTargetRetention,
        }, _loggerFactory, _time);
        Run(command, async ct =>
        {
            var snapshot = await backups.BackupAsync(volume, ct).ConfigureAwait(false);
            return new Dictionary<string, string>
            {
                ["snapshot"] = snapshot.Name,
                ["backup_id"] = b.BackupId,
                ["taken_at"] = snapshot.Timestamp.ToString("O", CultureInfo.InvariantCulture),
            };
        });
    }

    /// <summary>
    /// Validates a <c>start_volume_move</c> command and starts it: DeCloud.Storage's <see cref="VolumeMove"/> to the
    /// destination agent's volume receiver at <c>target_endpoint</c> (host:port), presenting the command's move token on every
    /// connection, with an IN_PROGRESS ack per step.
    /// An unreachable destination ends FAILED with the reason; the source volume stays as it was.
    /// </summary>
    public void BeginMove(Command command)
    {
        var m = command.StartVolumeMove;
        var volumes = _volumes ?? throw NotConfigured(command);
        var volume = string.IsNullOrEmpty(m.Volume) ? m.VmId : m.Volume;
        if (VolumeName.Check(volume) is { } problem)
        {
            throw new ArgumentException($"start_volume_move: volume '{volume}' is invalid: {problem}");
        }

        if (!TryParseEndpoint(m.TargetEndpoint, out var host, out var port))
        {
            throw new ArgumentException($"start_volume_move: target_endpoint '{m.TargetEndpoint}' must be host:port (port 1-65535).");
        }

        if (string.IsNullOrEmpty(m.MoveToken) || string.IsNullOrEmpty(m.MoveId))
        {
            throw new ArgumentException("start_volume_move: move_token and move_id are required; destinations accept only moves the orchestrator authorized.");
        }

        var ticket = new MoveTicket(m.MoveToken, m.VmId, volume, m.MoveId);

        var move = new VolumeMove(volumes, new VolumeMoveOptions { MaxAttempts = 2, RetryDelay = TimeSpan.FromMilliseconds(500) }, _loggerFactory, _time);
        Run(command, async ct =>
        {
            var hooks = new MoveHooks
            {
                StepStarting = (step, _) =>
                {
                    var progress = new CommandAck { CommandId = command.CommandId, Sequence = command.Sequence, Status = AckStatus.InProgress };
                    progress.Result["step"] = step.ToString();
                    _outbox.Post(progress);
                    return ValueTask.CompletedTask;
                },
            };
            var result = await move.MoveAsync(volume, c => ConnectAsync(host, port, ticket, c), hooks, cancellationToken: ct).ConfigureAwait(false);
            return new Dictionary<string, string>
            {
                ["move_id"] = m.MoveId,
                ["destination_uuid"] = result.DestinationUuid.ToString("D"),
                ["stream_bytes"] = result.StreamBytes.ToString(CultureInfo.InvariantCulture),
                ["files"] = result.Files.ToString(CultureInfo.InvariantCulture),
            };
        });
    }

    /// <summary>
    /// Starts the volume receiver (destination side of moves) on <see cref="AgentOptions.MoveListenPort"/> when set;
    /// returns its endpoint, or null. Each connection must first present the orchestrator's move token (<see cref="MovePreamble"/>,
    /// checked by <see cref="MoveTokenGate"/>); only then is it served by DeCloud.Storage's <see cref="VolumeReceiver"/>.
    /// </summary>
    public string? StartReceiver()
    {
        if (_volumes is null || _options.MoveListenPort < 0 || _listener is not null)
        {
            return ReceiverEndpoint;
        }

        var address = System.Net.IPAddress.TryParse(_options.PublicHost, out var ip) ? ip : System.Net.IPAddress.Loopback;
        var listener = new System.Net.Sockets.TcpListener(address, _options.MoveListenPort);
        listener.Start(16);
        _listener = listener;
        var receiver = new VolumeReceiver(_volumes, loggerFactory: _loggerFactory);
        _receiver = receiver;
        ReceiverEndpoint = string.Create(CultureInfo.InvariantCulture, $"{_options.PublicHost}:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}");
        Log.ReceiverListening(_logger, ReceiverEndpoint);
        var loop = AcceptLoopAsync(listener, receiver, _stopping.Token);
        lock (_running)
        {
            _running.Add(loop);
        }

        return ReceiverEndpoint;
    }

    /// <summary>The receiver's host:port once <see cref="StartReceiver"/> ran.</summary>
    public string? ReceiverEndpoint { get; private set; }

    /// <summary>The REJECTED reason of a storage command on an agent without a Btrfs root.</summary>
    public static ArgumentException NotConfigured(Command command) =>
        new($"{command.KindCase} needs a Btrfs storage root ({nameof(AgentOptions.StorageRoot)}); this agent has none configured.");

    /// <summary>At start: commands stored IN_PROGRESS were cut off by a restart; they become FAILED (Storage leaves nothing half-received).</summary>
    public int FailInterrupted()
    {
        var count = 0;
        foreach (var ack in _state.ListAcks(AckStatus.InProgress))
        {
            ack.Status = AckStatus.Failed;
            ack.Error = "the agent restarted while this command ran; nothing half-done was kept. Send it again.";
            _state.ReplaceAck(ack);
            count++;
        }

        return count;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Stop();
        Task[] running;
        lock (_running)
        {
            running = [.. _running];
        }

        try
        {
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Cancelled by shutdown: the stored ack stays IN_PROGRESS and becomes FAILED at the next start.
        }

        if (_receiver is not null)
        {
            // Receives still waiting for their sender to resume are ended and their half-received subvolumes removed.
            await _receiver.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
        _serial.Dispose();
    }

    internal static bool TryParseEndpoint(string? text, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = text?.LastIndexOf(':') ?? -1;
        if (text is null || colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        host = text[..colon].Trim('[', ']');
        return host.Length is > 0 and <= 253;
    }

    private static async ValueTask<Stream> ConnectAsync(string host, int port, MoveTicket ticket, CancellationToken cancellationToken)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new IOException($"the destination {host}:{port} did not answer within 10 s.");
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        try
        {
            // The move token goes first; the storage wire starts only once the destination accepted it.
            await MovePreamble.PresentAsync(stream, ticket, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or MoveRefusedException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            if (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new IOException($"the destination {host}:{port} did not answer the move preamble within 10 s.", ex);
            }

            throw;
        }

        return stream;
    }

    private async Task AcceptLoopAsync(System.Net.Sockets.TcpListener listener, VolumeReceiver receiver, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            System.Net.Sockets.Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ServeAsync(socket, receiver, ct);
        }
    }

    private async Task ServeAsync(System.Net.Sockets.Socket socket, VolumeReceiver receiver, CancellationToken ct)
    {
        var remote = (socket.RemoteEndPoint as System.Net.IPEndPoint)?.Address;
        var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        await using var streamScope = stream.ConfigureAwait(false);
        try
        {
            // Nothing reaches the receiver before the sender's move token is checked.
            string? refusal;
            using (var preamble = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                preamble.CancelAfter(PreambleTimeout);
                try
                {
                    var (ticket, problem) = await MovePreamble.ReadAsync(stream, preamble.Token).ConfigureAwait(false);
                    refusal = problem ?? await _moveGate.CheckAsync(ticket!, remote, preamble.Token).ConfigureAwait(false);
                    if (problem is not null)
                    {
                        Log.MoveRefused(_logger, remote?.ToString() ?? "?", problem);
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    Log.MoveRefused(_logger, remote?.ToString() ?? "?", $"no move preamble within {PreambleTimeout.TotalSeconds} s");
                    return;
                }
                catch (EndOfStreamException)
                {
                    Log.MoveRefused(_logger, remote?.ToString() ?? "?", "the connection closed inside the move preamble");
                    return;
                }

                await MovePreamble.AnswerAsync(stream, refusal, preamble.Token).ConfigureAwait(false);
            }

            if (refusal is not null)
            {
                return;
            }

            await receiver.ServeAsync(stream, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StorageException or IOException or OperationCanceledException or InvalidDataException or System.Net.Sockets.SocketException)
        {
            // One sender failed or sent garbage; the receiver removed what it half-received and keeps listening.
            Log.ReceiveFailed(_logger, ex.Message);
        }
    }

    /// <summary>How long a sender has to present its move token.</summary>
    internal static TimeSpan PreambleTimeout { get; } = TimeSpan.FromSeconds(10);

    private static string TagOf(string text, string fallback)
    {
        var tag = new string([.. text.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_').Take(64)]);
        return tag.Length == 0 ? fallback : tag;
    }

    private void Run(Command command, Func<CancellationToken, Task<Dictionary<string, string>>> operation)
    {
        var task = Task.Run(async () =>
        {
            var ct = _stopping.Token;
            var final = new CommandAck { CommandId = command.CommandId, Sequence = command.Sequence, Status = AckStatus.Succeeded };
            await _serial.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                foreach (var (k, v) in await operation(ct).ConfigureAwait(false))
                {
                    final.Result[k] = v;
                }
            }
            catch (Exception ex) when (ex is StorageException or ArgumentException or IOException or InvalidOperationException or System.Net.Sockets.SocketException
                                       || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                final.Status = AckStatus.Failed;
                final.Error = ex.Message;
            }
            finally
            {
                _serial.Release();
            }

            _state.ReplaceAck(final);
            Log.StorageCommandFinished(_logger, command.CommandId, command.KindCase.ToString(), final.Status.ToString(), final.Error);
            _outbox.Post(final);
        });
        lock (_running)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(task);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(40, LogLevel.Information, "Storage command {CommandId} ({Kind}) finished: {Status} {Error}")]
        public static partial void StorageCommandFinished(ILogger logger, string commandId, string kind, string status, string error);

        [LoggerMessage(41, LogLevel.Information, "Volume receiver listening on {Endpoint}")]
        public static partial void ReceiverListening(ILogger logger, string endpoint);

        [LoggerMessage(42, LogLevel.Warning, "A volume move to this node failed: {Error}")]
        public static partial void ReceiveFailed(ILogger logger, string error);

        [LoggerMessage(43, LogLevel.Warning, "A volume move connection from {Remote} was refused before the receiver: {Reason}")]
        public static partial void MoveRefused(ILogger logger, string remote, string reason);
    }
}
