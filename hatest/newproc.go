package hatest

// NewProc prepares a process of the binary bin: role and flags in args,
// the environment of this process less its EXTAGRAM_* variables plus env,
// its output in <logDir>/<name>.log. addr and metricsAddr are what its
// flags make it listen on, for the caller's checks. It is not started.
func NewProc(bin, name, addr, metricsAddr, logDir string, env, args []string) *Proc {
	return newProc(bin, name, addr, metricsAddr, logDir, childEnv(env...), args)
}
