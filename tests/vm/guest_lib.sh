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

# vm_pids: the pids of every process now, on one line.
vm_pids() {
	for vm_d in /proc/[0-9]*; do
		printf '%s ' "${vm_d#/proc/}"
	done
}

# vm_run NAME TIMEOUT_S CMD...: runs CMD (killed after TIMEOUT_S seconds)
# with standard input from /dev/null, then kills every process that came
# up meanwhile and is still there (test harnesses fork children into their
# own process groups; daemons started before, such as a xenstored, are
# left alone), then relays its standard output, the last 60 lines of its
# standard error, and its status.
vm_run() {
	vm_name=$1 vm_secs=$2
	shift 2
	echo "${VM_MARK}begin $vm_name"
	vm_t0=$(vm_uptime)
	vm_out=$(mktemp)
	vm_err=$(mktemp)
	vm_before=" $(vm_pids)"
	timeout "$vm_secs" "$@" </dev/null >"$vm_out" 2>"$vm_err"
	vm_status=$?
	for vm_p in $(vm_pids); do
		case "$vm_before" in
		*" $vm_p "*) ;;
		*) kill -9 "$vm_p" 2>/dev/null ;;
		esac
	done
	vm_t1=$(vm_uptime)
	sed "s/^/${VM_MARK}out /" "$vm_out"
	tail -n 60 "$vm_err" | sed "s/^/${VM_MARK}err /"
	rm -f "$vm_out" "$vm_err"
	echo "${VM_MARK}end $vm_name $vm_status $(awk \
		"BEGIN { printf \"%.2f\", $vm_t1 - $vm_t0 }")"
}
