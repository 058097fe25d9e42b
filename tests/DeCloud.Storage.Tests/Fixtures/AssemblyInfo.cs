[assembly: AssemblyFixture(typeof(DeCloud.Storage.Tests.Fixtures.BtrfsHosts))]
