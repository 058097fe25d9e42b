using System.Globalization;

namespace DeCloud.Virtualization.Readiness;

/// <summary>Parses Linux <c>/proc/net/tcp</c> and <c>/proc/net/tcp6</c> tables.</summary>
internal static class ProcNetTcp
{
    private const string ListenState = "0A";

    /// <summary>True when a socket in <c>LISTEN</c> state has local port <paramref name="port"/>. Malformed lines are skipped.</summary>
    public static bool IsListening(string table, int port)
    {
        foreach (var raw in table.AsSpan().EnumerateLines())
        {
            var line = raw.Trim();
            // "sl  local_address rem_address   st ...": e.g. "0: 00000000:1F90 00000000:0000 0A ..."
            var fields = new List<Range>(4);
            foreach (var r in line.Split(' '))
            {
                if (!line[r].IsEmpty)
                {
                    fields.Add(r);
                    if (fields.Count == 4)
                    {
                        break;
                    }
                }
            }

            if (fields.Count < 4 || !line[fields[3]].SequenceEqual(ListenState))
            {
                continue;
            }

            var local = line[fields[1]];
            var colon = local.LastIndexOf(':');
            if (colon < 0 || local.Length - colon - 1 != 4)
            {
                continue;
            }

            if (int.TryParse(local[(colon + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var p) && p == port)
            {
                return true;
            }
        }

        return false;
    }
}
