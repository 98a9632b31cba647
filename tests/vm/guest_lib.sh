# The guest's side of the result protocol (sourced by /init and by jobs;
# tests/vm/rillvm.py reads it back). Every line starts with "@rill-vm ":
#   begin NAME             a program starts
#   out LINE               a line of its standard output (TAP)
#   err LINE               a line of its standard error (the last ones)
#   end NAME STATUS SECS   it exited with STATUS after SECS seconds
#   fail TEXT              something outside any program went wrong
#   note TEXT              a line of the guest's timeline (a TAP comment)
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

# vm_note TEXT: a timeline note, "TEXT at N s" (the guest's uptime).
vm_note() {
	echo "${VM_MARK}note $* at $(vm_uptime) s"
}

# vm_sweep SID: kills every process left in session SID.
vm_sweep() {
	vm_sid=$1
	for vm_d in /proc/[0-9]*; do
		read -r vm_stat 2>/dev/null <"$vm_d/stat" || continue
		# pid (comm) state ppid pgrp session ...: after the last ")".
		# shellcheck disable=SC2086
		set -- ${vm_stat##*) }
		[ "$4" = "$vm_sid" ] && kill -9 "${vm_d#/proc/}" 2>/dev/null
	done
	return 0
}

# vm_run NAME TIMEOUT_S CMD...: runs CMD in a session of its own (killed
# after TIMEOUT_S seconds) with standard input from /dev/null; then kills
# whatever it left behind in that session (test harnesses fork checks
# into process groups of their own), so that nothing outlives it, while
# other programs and daemons (a xenstored, a second lane of vm_run) are
# left alone; then relays its standard output, the last 60 lines of its
# standard error, and its status.
vm_run() {
	vm_name=$1 vm_secs=$2
	shift 2
	echo "${VM_MARK}begin $vm_name"
	vm_t0=$(vm_uptime)
	vm_out=$(mktemp)
	vm_err=$(mktemp)
	# timeout execs CMD in its own process (a child watches it), and
	# setsid makes that process a session leader: its pid is the
	# session's id.
	timeout "$vm_secs" setsid "$@" </dev/null >"$vm_out" 2>"$vm_err" &
	vm_pid=$!
	wait "$vm_pid"
	vm_status=$?
	vm_sweep "$vm_pid"
	vm_t1=$(vm_uptime)
	sed "s/^/${VM_MARK}out /" "$vm_out"
	tail -n 60 "$vm_err" | sed "s/^/${VM_MARK}err /"
	rm -f "$vm_out" "$vm_err"
	echo "${VM_MARK}end $vm_name $vm_status $(awk \
		"BEGIN { printf \"%.2f\", $vm_t1 - $vm_t0 }")"
}
