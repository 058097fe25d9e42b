namespace DeCloud.Core.Security;

/// <summary>What a connect token lets its holder do on the VM or project it names.</summary>
[Flags]
public enum TokenScopes
{
    /// <summary>Nothing.</summary>
    None = 0,

    /// <summary>SSH to the VM (through the host or a relay).</summary>
    Ssh = 1,

    /// <summary>HTTP(S) ingress to the VM.</summary>
    Http = 2,

    /// <summary>The web terminal (serial console) of the VM.</summary>
    Terminal = 4,

    /// <summary>Forwarded TCP/UDP ports of the VM.</summary>
    Port = 8,
}

/// <summary>The wire names of <see cref="TokenScopes"/> (<c>ssh</c>, <c>http</c>, <c>terminal</c>, <c>port</c>).</summary>
internal static class TokenScopeNames
{
    public const TokenScopes All = TokenScopes.Ssh | TokenScopes.Http | TokenScopes.Terminal | TokenScopes.Port;

    public static TokenScopes FromUtf8(ReadOnlySpan<byte> name) => name switch
    {
        _ when name.SequenceEqual("ssh"u8) => TokenScopes.Ssh,
        _ when name.SequenceEqual("http"u8) => TokenScopes.Http,
        _ when name.SequenceEqual("terminal"u8) => TokenScopes.Terminal,
        _ when name.SequenceEqual("port"u8) => TokenScopes.Port,
        _ => TokenScopes.None,
    };

    public static IEnumerable<string> Names(TokenScopes scopes)
    {
        if (scopes.HasFlag(TokenScopes.Ssh)) { yield return "ssh"; }
        if (scopes.HasFlag(TokenScopes.Http)) { yield return "http"; }
        if (scopes.HasFlag(TokenScopes.Terminal)) { yield return "terminal"; }
        if (scopes.HasFlag(TokenScopes.Port)) { yield return "port"; }
    }
}
