using System.Numerics;
using DeCloud.Core.Model;
using Nethereum.Contracts;
using Nethereum.Hex.HexTypes;
using Nethereum.JsonRpc.Client;
using Nethereum.RPC.Eth.DTOs;
using Nethereum.Web3;

namespace DeCloud.Billing.Chain;

/// <summary>
/// The few JSON-RPC calls Billing makes, through Nethereum, each bounded by the configured timeout and
/// with every transport or RPC failure turned into a <see cref="ChainException"/>. Before anything is
/// read it checks that the RPC reports the configured chain id and that the configured contract is a
/// 6-decimal token.
/// </summary>
internal sealed class ChainRpc : IDisposable
{
    /// <summary>keccak256("Transfer(address,address,uint256)").</summary>
    public const string TransferTopic = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

    private readonly ChainOptions _options;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _verified = new(1, 1);
    private bool _contractChecked;

    public ChainRpc(ChainOptions options, Nethereum.Web3.Accounts.Account? account = null)
    {
        _options = options;
        _http = new HttpClient { Timeout = options.RpcTimeout };
        var client = new RpcClient(options.RpcUrl!, _http);
        Web3 = account is null ? new Web3(client) : new Web3(account, client);
    }

    public Web3 Web3 { get; }

    /// <summary>Checks the chain id on every call and the contract once.</summary>
    public async Task EnsureChainAsync(CancellationToken cancellationToken)
    {
        var chainId = await Call(() => Web3.Eth.ChainId.SendRequestAsync(), "eth_chainId", cancellationToken).ConfigureAwait(false);
        if (chainId.Value != _options.ChainId)
        {
            throw new ChainException($"The RPC at {_options.RpcUrl} reports chain id {chainId.Value}, but Chain.ChainId is {_options.ChainId}; nothing was read or credited.", isTransient: false);
        }

        if (_contractChecked)
        {
            return;
        }

        await _verified.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_contractChecked)
            {
                return;
            }

            var contract = _options.Contract.ToLowerHex();
            var code = await Call(() => Web3.Eth.GetCode.SendRequestAsync(contract), "eth_getCode", cancellationToken).ConfigureAwait(false);
            if (string.IsNullOrEmpty(code) || code == "0x")
            {
                throw new ChainException($"There is no contract at Chain.UsdcContract {contract} on chain {_options.ChainId}.", isTransient: false);
            }

            // decimals() selector 0x313ce567
            var decimals = await Call(
                () => Web3.Eth.Transactions.Call.SendRequestAsync(new CallInput("0x313ce567", contract), BlockParameter.CreateLatest()),
                "eth_call decimals()", cancellationToken).ConfigureAwait(false);
            var value = string.IsNullOrEmpty(decimals) || decimals == "0x" ? BigInteger.MinusOne : new HexBigInteger(decimals).Value;
            if (value != 6)
            {
                throw new ChainException($"The contract at Chain.UsdcContract {contract} reports {value} decimals; a USDC contract has 6.", isTransient: false);
            }

            _contractChecked = true;
        }
        finally
        {
            _verified.Release();
        }
    }

    public Task<TransactionReceipt?> GetReceiptAsync(string txHash, CancellationToken cancellationToken) =>
        Call<TransactionReceipt?>(() => Web3.Eth.Transactions.GetTransactionReceipt.SendRequestAsync(txHash)!, "eth_getTransactionReceipt", cancellationToken);

    public async Task<long> GetBlockNumberAsync(CancellationToken cancellationToken) =>
        (long)(await Call(() => Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync(), "eth_blockNumber", cancellationToken).ConfigureAwait(false)).Value;

    public async Task<string?> GetBlockHashAsync(long number, CancellationToken cancellationToken)
    {
        var block = await Call(
            () => Web3.Eth.Blocks.GetBlockWithTransactionsHashesByNumber.SendRequestAsync(new HexBigInteger(number)),
            "eth_getBlockByNumber", cancellationToken).ConfigureAwait(false);
        return block?.BlockHash?.ToLowerInvariant();
    }

    public async Task<FilterLog[]> GetTransferLogsAsync(long fromBlock, long toBlock, CancellationToken cancellationToken)
    {
        var filter = new NewFilterInput
        {
            Address = [_options.Contract.ToLowerHex()],
            FromBlock = new BlockParameter(new HexBigInteger(fromBlock)),
            ToBlock = new BlockParameter(new HexBigInteger(toBlock)),
            Topics = [TransferTopic, null, Topic(_options.Deposit)],
        };
        return await Call(() => Web3.Eth.Filters.GetLogs.SendRequestAsync(filter), "eth_getLogs", cancellationToken).ConfigureAwait(false);
    }

    public Task<string> SendRawAsync(string rawHex, CancellationToken cancellationToken) =>
        Call(() => Web3.Eth.Transactions.SendRawTransaction.SendRequestAsync(rawHex), "eth_sendRawTransaction", cancellationToken);

    public async Task<BigInteger> GetPendingNonceAsync(string address, CancellationToken cancellationToken) =>
        (await Call(() => Web3.Eth.Transactions.GetTransactionCount.SendRequestAsync(address, BlockParameter.CreatePending()),
            "eth_getTransactionCount", cancellationToken).ConfigureAwait(false)).Value;

    public async Task<BigInteger> GetGasPriceAsync(CancellationToken cancellationToken) =>
        (await Call(() => Web3.Eth.GasPrice.SendRequestAsync(), "eth_gasPrice", cancellationToken).ConfigureAwait(false)).Value;

    /// <summary>The 32-byte topic of an address (left-padded with zeros).</summary>
    public static string Topic(WalletAddress address) => "0x000000000000000000000000" + address.ToLowerHex()[2..];

    public static FilterLog[] LogsOf(TransactionReceipt receipt) => receipt.Logs is null ? [] : receipt.Logs.ConvertToFilterLog();

    public void Dispose()
    {
        _http.Dispose();
        _verified.Dispose();
    }

    public async Task<T> Call<T>(Func<Task<T>> call, string what, CancellationToken cancellationToken)
    {
        try
        {
            return await call().WaitAsync(_options.RpcTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is TimeoutException or RpcClientTimeoutException or TaskCanceledException)
        {
            // Our deadline, Nethereum's client timeout and HttpClient's timeout race; whichever fires first, it is a timeout.
            throw new ChainException($"{what} to {_options.RpcUrl} did not answer within {_options.RpcTimeout}.", isTransient: true, ex);
        }
        catch (RpcResponseException ex)
        {
            throw new ChainException($"{what} to {_options.RpcUrl} was refused: {ex.RpcError?.Message ?? ex.Message}", isTransient: false, ex);
        }
        catch (Exception ex) when (ex is RpcClientUnknownException or HttpRequestException
                                       or Newtonsoft.Json.JsonException or FormatException)
        {
            throw new ChainException($"{what} to {_options.RpcUrl} failed: {ex.Message}", isTransient: true, ex);
        }
    }
}
