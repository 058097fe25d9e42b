using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;

namespace DeCloud.Core.Lifecycle;

internal static partial class Log
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Information, Message = "VM {VmId} created (Pending), {EffectCount} effects queued")]
    public static partial void Created(ILogger logger, VmId vmId, int effectCount);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "VM {VmId} {From} -> {To} ({Cause}), {EffectCount} effects queued")]
    public static partial void Transitioned(ILogger logger, VmId vmId, VmState from, VmState to, VmTransitionCause cause, int effectCount);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "VM {VmId}: refused invalid transition {From} -> {To}")]
    public static partial void Refused(ILogger logger, VmId vmId, VmState from, VmState to);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Debug, Message = "Effect {EffectId} done after {Attempts} attempts")]
    public static partial void EffectDone(ILogger logger, string effectId, int attempts);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Warning, Message = "Effect {EffectId} failed (attempt {Attempts}), retry at {RetryAt}")]
    public static partial void EffectRetry(ILogger logger, Exception exception, string effectId, int attempts, DateTimeOffset retryAt);

    [LoggerMessage(EventId = 2012, Level = LogLevel.Error, Message = "Effect {EffectId} gave up after {Attempts} attempts")]
    public static partial void EffectGaveUp(ILogger logger, Exception exception, string effectId, int attempts);

    [LoggerMessage(EventId = 2013, Level = LogLevel.Error, Message = "Effect runner round failed; retrying after {Delay}")]
    public static partial void RoundFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(EventId = 2014, Level = LogLevel.Warning, Message = "Effect {EffectId} was already marked by someone else; not marking it again")]
    public static partial void EffectAlreadyMarked(ILogger logger, string effectId);
}
