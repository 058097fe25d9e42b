using Nethereum.Signer;

namespace DeCloud.Cli.Client;

/// <summary>A wallet private key kept in a file (64 hex characters), used to sign in and to register nodes.</summary>
internal sealed class WalletKey
{
    private readonly EthECKey _key;

    private WalletKey(EthECKey key) => _key = key;

    public string Address => _key.GetPublicAddress();

    public string PrivateKeyHex => Convert.ToHexStringLower(_key.GetPrivateKeyAsBytes());

    public static WalletKey Generate() => new(EthECKey.GenerateKey());

    /// <summary>Loads a key file; throws <see cref="CliException"/> naming the file when it is unreadable or malformed.</summary>
    public static WalletKey Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read wallet key file '{path}': {ex.Message}");
        }

        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        if (text.Length != 64 || !text.All(char.IsAsciiHexDigit))
        {
            throw new CliException(ExitCodes.Usage, $"wallet key file '{path}' must hold 64 hex characters (a secp256k1 private key); create one with 'decloud wallet new'.");
        }

        return new WalletKey(new EthECKey(text));
    }

    /// <summary>Writes the key to <paramref name="path"/> readable by the owner only.</summary>
    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllText(path, PrivateKeyHex + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>An EIP-191 personal_sign signature of <paramref name="message"/>.</summary>
    public string Sign(string message) => new EthereumMessageSigner().EncodeUTF8AndSign(message, _key);
}
