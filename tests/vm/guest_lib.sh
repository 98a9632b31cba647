# The guest's side of the result protocol (sourced by /init and by jobs;
# tests/vm/rillvm.py reads it back). Every line starts with "@rill-vm ":
#   begin NAME             a program starts
#   out LINE               a line of its standard output (TAP)
#   err LINE               a line of its standard error (the last ones)
#   end NAME STATUS SECS   it exited with STATUS after SECS seconds
#   fail TEXT              something outside any program went wrong
#   done                   the job finished; the guest powers off
# Jobs write to standard output, which /init connects to the result port.
VM_MARK='@rill-vm '

# vm_fail TEXT: a failure outside any program (counted as a failed test).
vm_fail() {
	echo "${VM_MARK}fail $*"
}

# vm_uptime: seconds since boot, with hundredths.
vm_uptime() {
	read -r up _ </proc/uptime
	echo "$up"
}

# vm_run NAME TIMEOUT_S CMD...: runs CMD (killed after TIMEOUT_S seconds)
# with standard input from /dev/null, relays its standard output as it
# comes and the last 60 lines of its standard error, then its status.
vm_run() {
	vm_name=$1 vm_secs=$2
	shift 2
	echo "${VM_MARK}begin $vm_name"
	vm_t0=$(vm_uptime)
	vm_err=$(mktemp)
	vm_rc=$(mktemp)
	{
		timeout "$vm_secs" "$@" </dev/null 2>"$vm_err"
		echo $? >"$vm_rc"
	} | sed "s/^/${VM_MARK}out /"
	tail -n 60 "$vm_err" | sed "s/^/${VM_MARK}err /"
	vm_status=$(cat "$vm_rc")
	rm -f "$vm_err" "$vm_rc"
	vm_t1=$(vm_uptime)
	echo "${VM_MARK}end $vm_name ${vm_status:-255} $(awk \
		"BEGIN { printf \"%.2f\", $vm_t1 - $vm_t0 }")"
}
