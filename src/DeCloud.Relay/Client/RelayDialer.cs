using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DeCloud.Relay.Forwarding;

namespace DeCloud.Relay.Client;

/// <summary>Opens connections to the relay's control endpoint: TCP, then TLS with the pinned certificate when configured.</summary>
internal sealed class RelayDialer
{
    private readonly RelayClientOptions _options;
    private readonly byte[]? _pin;
    private readonly SslClientAuthenticationOptions _tls;

    public RelayDialer(RelayClientOptions options)
    {
        _options = options;
        _pin = options.PinnedCertificateSha256 is { Length: 64 } pin ? Convert.FromHexString(pin) : null;
        // One options instance for every connection of this client, so TLS sessions can be resumed.
        _tls = new SslClientAuthenticationOptions
        {
            TargetHost = options.ServerHost,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => IsPinned(certificate),
            // The pin decides alone: no system trust store walk, no revocation or AIA downloads per handshake.
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = new X509ChainPolicy
            {
                RevocationMode = X509RevocationMode.NoCheck,
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                DisableCertificateDownloads = true,
            },
        };
    }

    public async Task<RawConnection> DialAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream transport;
        try
        {
            await socket.ConnectAsync(_options.ServerHost, _options.ServerPort, cancellationToken).ConfigureAwait(false);
            transport = new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        if (!_options.UseTls)
        {
            return new RawConnection(socket, transport) { AllowZeroCopy = _options.UseZeroCopy };
        }

        var ssl = new SslStream(transport, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(_tls, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new RawConnection(socket, ssl);
    }

    private bool IsPinned(X509Certificate? certificate) =>
        certificate is not null && _pin is not null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(certificate.GetRawCertData()), _pin);
}
