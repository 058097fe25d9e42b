namespace DeCloud.Relay;

/// <summary>The base of every error the relay SDK throws.</summary>
public class RelayException : Exception
{
    internal RelayException(string message, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException) => IsTransient = isTransient;

    /// <summary>True when retrying the same operation later may succeed (the tunnel was down, the relay was restarting).</summary>
    public bool IsTransient { get; }
}

/// <summary>The relay refused the node's credentials.</summary>
public sealed class RelayAuthenticationException : RelayException
{
    internal RelayAuthenticationException(string message)
        : base(message)
    {
    }
}

/// <summary>The peer broke the wire protocol (garbage, oversized or unknown frames, unsupported version).</summary>
public sealed class RelayProtocolException : RelayException
{
    internal RelayProtocolException(string message)
        : base(message)
    {
    }
}

/// <summary>The relay refused a mapping (quota reached, range exhausted, invalid request).</summary>
public sealed class RelayMappingException : RelayException
{
    internal RelayMappingException(string message)
        : base(message)
    {
    }
}
