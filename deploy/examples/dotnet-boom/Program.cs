// The seed's crashing app: an unhandled exception. With the DOTNET_Dbg*
// variables of deployment.yaml the runtime's createdump writes a minidump
// (and, with DOTNET_EnableCrashReport=1, <dump>.crashreport.json) before the
// process dies; the crashdump agent ships both.
Console.WriteLine($"boom: starting, crashing in 5 seconds (pid {Environment.ProcessId})");
Thread.Sleep(TimeSpan.FromSeconds(5));
throw new Exception("Boom!!");
