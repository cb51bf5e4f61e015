// Handlers the CLI's stand-in lacks, for the tests of `patronage repair/status --target`.
//
//   - POST /api/2.2/jobs/runs/repair behaves like the Jobs API: it re-runs the
//     named tasks (plus their dependents with rerun_dependent_tasks, or every
//     failed task with rerun_all_failed_tasks) as new attempts of the same run,
//     refuses a repair whose latest_repair_id is not the run's latest repair, and
//     answers with the new repair_id. The run is RUNNING again, so the stand-in's
//     own runs/get completes it (SUCCESS) on the next poll.
//   - GET /api/2.2/jobs/runs/get returns repair_history only with include_history=true.
//   - POST /api/2.2/standin/runs/set-task-states is NOT a Databricks API: tests
//     use it to end a run with chosen task result states (say, one FAILED task).
package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/databricks/cli/libs/testserver"
	"github.com/databricks/databricks-sdk-go/service/jobs"
)

func badRequest(format string, args ...any) testserver.Response {
	return testserver.Response{
		StatusCode: 400,
		Body:       map[string]string{"error_code": "INVALID_PARAMETER_VALUE", "message": fmt.Sprintf(format, args...)},
	}
}

// failedStates are the task result states a repair with rerun_all_failed_tasks re-runs.
var failedStates = []jobs.RunResultState{
	jobs.RunResultStateFailed, jobs.RunResultStateTimedout, jobs.RunResultStateCanceled,
	jobs.RunResultStateUpstreamFailed, jobs.RunResultStateUpstreamCanceled,
}

// dependents adds to keys every task of the job that depends on one of them, transitively.
func dependents(job jobs.Job, keys map[string]bool) {
	for changed := true; changed; {
		changed = false
		for _, t := range job.Settings.Tasks {
			for _, d := range t.DependsOn {
				if keys[d.TaskKey] && !keys[t.TaskKey] {
					keys[t.TaskKey] = true
					changed = true
				}
			}
		}
	}
}

func repairRun(req testserver.Request) any {
	var request jobs.RepairRun
	if err := json.Unmarshal(req.Body, &request); err != nil {
		return badRequest("request parsing error: %s", err)
	}
	w := req.Workspace
	defer w.LockUnlock()()

	run, ok := w.JobRuns[request.RunId]
	if !ok {
		return testserver.Response{StatusCode: 404}
	}
	if run.State == nil || run.State.LifeCycleState != jobs.RunLifeCycleStateTerminated {
		return badRequest("run %d is not terminated; it cannot be repaired", request.RunId)
	}
	latest := int64(0)
	for _, item := range run.RepairHistory {
		if item.Type == jobs.RepairHistoryItemTypeRepair {
			latest = item.Id
		}
	}
	if latest != request.LatestRepairId {
		return badRequest("latest_repair_id %d is not the latest repair %d of run %d", request.LatestRepairId, latest, request.RunId)
	}
	keys := map[string]bool{}
	for _, k := range request.RerunTasks {
		keys[k] = true
	}
	if request.RerunAllFailedTasks {
		for _, t := range run.Tasks {
			if t.State != nil && slices.Contains(failedStates, t.State.ResultState) {
				keys[t.TaskKey] = true
			}
		}
	}
	job, ok := w.Jobs[run.JobId]
	if !ok || job.Settings == nil {
		return badRequest("job %d of run %d no longer exists", run.JobId, request.RunId)
	}
	if request.RerunDependentTasks {
		dependents(job, keys)
	}
	if len(keys) == 0 {
		return badRequest("no task to re-run")
	}

	if len(run.RepairHistory) == 0 {
		original := jobs.RepairHistoryItem{Type: jobs.RepairHistoryItemTypeOriginal, State: run.State}
		for _, t := range run.Tasks {
			original.TaskRunIds = append(original.TaskRunIds, t.RunId)
		}
		run.RepairHistory = append(run.RepairHistory, original)
	}
	repair := jobs.RepairHistoryItem{Id: nextRepairID(), Type: jobs.RepairHistoryItemTypeRepair}
	for i, t := range run.Tasks {
		if !keys[t.TaskKey] {
			continue
		}
		delete(keys, t.TaskKey)
		// A new attempt: new task run id, the next attempt number, pending.
		run.Tasks[i] = jobs.RunTask{
			TaskKey:       t.TaskKey,
			RunId:         nextRepairID(),
			AttemptNumber: t.AttemptNumber + 1,
			State:         &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStatePending},
		}
		repair.TaskRunIds = append(repair.TaskRunIds, run.Tasks[i].RunId)
	}
	if len(keys) > 0 {
		return badRequest("run %d has no task %v", request.RunId, keys)
	}
	run.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateRunning}
	repair.State = run.State
	run.RepairHistory = append(run.RepairHistory, repair)
	w.JobRuns[request.RunId] = run
	return jobs.RepairRunResponse{RepairId: repair.Id}
}

var (
	repairIDMu   sync.Mutex
	lastRepairID int64 = 8000000000000000000
)

// nextRepairID is unique per process (handlers run under a workspace lock; runs of
// different workspaces may interleave, so the counter has its own lock).
func nextRepairID() int64 {
	repairIDMu.Lock()
	defer repairIDMu.Unlock()
	lastRepairID++
	return lastRepairID
}

// getRun is the stand-in's runs/get, with repair_history only when asked for.
func getRun(req testserver.Request) any {
	resp := req.Workspace.JobsGetRun(req)
	run, ok := resp.Body.(jobs.Run)
	if ok && !strings.EqualFold(req.URL.Query().Get("include_history"), "true") {
		run.RepairHistory = nil
		resp.Body = run
	}
	return resp
}

// setTaskStates (stand-in only) ends a run with the given task result states (the
// others SUCCESS, whatever the stand-in's own attempt to run the wheel left);
// the run's own result is FAILED when any task did not succeed.
func setTaskStates(req testserver.Request) any {
	var request struct {
		RunId  int64                          `json:"run_id"`
		States map[string]jobs.RunResultState `json:"states"`
	}
	if err := json.Unmarshal(req.Body, &request); err != nil {
		return badRequest("request parsing error: %s", err)
	}
	w := req.Workspace
	defer w.LockUnlock()()
	run, ok := w.JobRuns[request.RunId]
	if !ok {
		return testserver.Response{StatusCode: 404}
	}
	result := jobs.RunResultStateSuccess
	for i, t := range run.Tasks {
		state := jobs.RunResultStateSuccess
		if s, ok := request.States[t.TaskKey]; ok {
			state = s
		}
		run.Tasks[i].State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: state}
		if state != jobs.RunResultStateSuccess && state != jobs.RunResultStateExcluded {
			result = jobs.RunResultStateFailed
		}
	}
	run.State = &jobs.RunState{LifeCycleState: jobs.RunLifeCycleStateTerminated, ResultState: result}
	w.JobRuns[request.RunId] = run
	return run
}

// addRepairHandlers registers the handlers above; call it before the stand-in's
// defaults so that this runs/get takes precedence (the router keeps the first match).
func addRepairHandlers(server *testserver.Server) {
	server.Handle("POST", "/api/2.2/jobs/runs/repair", repairRun)
	server.Handle("GET", "/api/2.2/jobs/runs/get", getRun)
	server.Handle("POST", "/api/2.2/standin/runs/set-task-states", setTaskStates)
}
