"""Drives a Nomos cluster through python-nomad, a third-party Nomad client from PyPI, as a
migrating user's script would: nothing here knows it is not talking to Nomad.

Run by e2e/tests/nomad_client.rs with NOMAD_ADDR set to a cluster of one server and two agents
Each step prints what it checked; the first failed check raises, and
the exit status is then non-zero with the reason on stderr.
"""

import base64
import os
import sys
import time

import nomad
import nomad.api.exceptions as nomad_errors

SECOND = 1_000_000_000
JOB_ID = "pyweb"
LOG_LINE = "hello from python-nomad"


def job_spec(version_marker):
    """A service job of two raw_exec copies that print a line and sleep, with one canary."""
    script = f"echo {LOG_LINE} {version_marker}; exec sleep 600"
    return {
        "ID": JOB_ID,
        "Name": JOB_ID,
        "Type": "service",
        "Datacenters": ["*"],
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 2,
                "Update": {
                    "MaxParallel": 1,
                    "Canary": 1,
                    "AutoPromote": False,
                    "HealthCheck": "task_states",
                    "MinHealthyTime": 1 * SECOND,
                    "HealthyDeadline": 60 * SECOND,
                    "ProgressDeadline": 120 * SECOND,
                },
                "Tasks": [
                    {
                        "Name": "say",
                        "Driver": "raw_exec",
                        "Config": {"command": "/bin/sh", "args": ["-c", script]},
                        "Env": {"MARKER": version_marker},
                        "Resources": {"CPU": 20, "MemoryMB": 16},
                    }
                ],
            }
        ],
    }


def wait_for(what, check, timeout=90):
    """Polls `check` (which returns a true value when done) until `timeout` seconds passed."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
        except nomad_errors.BaseNomadException as error:
            last = error
        if last and not isinstance(last, Exception):
            print(f"ok: {what}")
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last answer: {last!r}")


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def running_allocs(client, version=None):
    allocs = client.job.get_allocations(JOB_ID)
    return [
        a
        for a in allocs
        if a["ClientStatus"] == "running"
        and a["DesiredStatus"] == "run"
        and (version is None or a["JobVersion"] == version)
    ]


def register_and_run(client):
    answer = client.job.register_job(JOB_ID, {"Job": job_spec("v0")})
    expect(answer.get("EvalID"), f"register answers an EvalID: {answer}")
    expect(answer.get("JobModifyIndex", 0) > 0, f"register answers a JobModifyIndex: {answer}")
    job = client.job.get_job(JOB_ID)
    expect(job["ID"] == JOB_ID and job["Type"] == "service", f"the job reads back: {job}")
    expect(job["TaskGroups"][0]["Tasks"][0]["Driver"] == "raw_exec", f"task reads back: {job}")
    wait_for("two allocations running", lambda: len(running_allocs(client, 0)) == 2)
    listed = [j["ID"] for j in client.jobs.get_jobs()]
    expect(JOB_ID in listed, f"the job is listed: {listed}")
    return answer["EvalID"]


def check_evaluations(client, eval_id):
    evals = client.job.get_evaluations(JOB_ID)
    expect(any(e["ID"] == eval_id for e in evals), f"register's eval is listed: {evals}")
    done = wait_for(
        "the register evaluation completes",
        lambda: client.evaluation.get_evaluation(eval_id)["Status"] == "complete"
        and client.evaluation.get_evaluation(eval_id),
    )
    expect(done["JobID"] == JOB_ID, f"the evaluation names the job: {done}")
    expect(done["TriggeredBy"] == "job-register", f"triggered by register: {done}")


def check_deployments(client, promoted):
    latest = client.job.get_deployment(JOB_ID)
    expect(latest["ID"] == promoted["ID"], f"the latest deployment is the promoted one: {latest}")
    expect(latest["JobID"] == JOB_ID and latest["Status"] == "successful", f"{latest}")
    expect(latest["TaskGroups"]["web"]["DesiredTotal"] == 2, f"two copies wanted: {latest}")
    expect(latest["TaskGroups"]["web"]["Promoted"], f"the group is promoted: {latest}")
    listed = [d["ID"] for d in client.job.get_deployments(JOB_ID)]
    expect(promoted["ID"] in listed, f"the job's deployments list it: {listed}")
    allocs = client.deployment.get_deployment_allocations(promoted["ID"])
    expect(len(allocs) >= 2, f"the deployment's allocations: {allocs}")


def check_logs(client):
    alloc = running_allocs(client)[0]
    logs = wait_for(
        "the task's stdout through client/fs/logs",
        lambda: (
            text := client.client.stream_logs.stream(alloc["ID"], "say", "stdout", plain=True)
        )
        and LOG_LINE in text
        and text,
    )
    expect(LOG_LINE in logs, f"the log holds the task's line: {logs!r}")


def promote_a_canary(client):
    client.job.register_job(JOB_ID, {"Job": job_spec("v1")})
    deployment = wait_for(
        "a canary of version 1 healthy",
        lambda: (d := client.job.get_deployment(JOB_ID))
        and d["JobVersion"] == 1
        and d["TaskGroups"]["web"]["HealthyAllocs"] >= 1
        and d,
    )
    expect(deployment["TaskGroups"]["web"]["DesiredCanaries"] == 1, f"one canary: {deployment}")
    expect(deployment["Status"] == "running", f"the deployment waits for promotion: {deployment}")
    expect(len(running_allocs(client, 0)) == 2, "the old copies keep running until promotion")
    client.deployment.promote_deployment_all(deployment["ID"])
    wait_for(
        "the promoted deployment succeeds",
        lambda: client.deployment.get_deployment(deployment["ID"])["Status"] == "successful",
    )
    wait_for("two copies of version 1 running", lambda: len(running_allocs(client, 1)) == 2)
    return deployment


def drain_a_node(client):
    node_id = running_allocs(client)[0]["NodeID"]
    client.node.drain_node_with_spec(node_id, {"Deadline": 60 * SECOND, "IgnoreSystemJobs": False})
    wait_for(
        "the drained node's allocations moved",
        lambda: len(running_allocs(client)) == 2
        and all(a["NodeID"] != node_id for a in running_allocs(client)),
        timeout=120,
    )
    node = client.node.get_node(node_id)
    expect(node["SchedulingEligibility"] == "ineligible", f"a drained node is ineligible: {node}")
    client.node.drain_node_with_spec(node_id, None, mark_eligible=True)
    wait_for(
        "the node eligible again",
        lambda: client.node.get_node(node_id)["SchedulingEligibility"] == "eligible",
    )


def read_and_write_a_variable(client):
    client.variable.create_variable("py/settings", {"Items": {"colour": "green"}})
    stored = client.variable.get_variable("py/settings")
    expect(stored["Items"] == {"colour": "green"}, f"the variable reads back: {stored}")
    listed = [v["Path"] for v in client.variables.get_variables(prefix="py/")]
    expect("py/settings" in listed, f"the variable is listed: {listed}")


def dispatch_once_per_token(client):
    """A parameterized batch job: two dispatches with one idempotency token run one instance,
    which finds its payload in local/ and its meta in the environment."""
    script = "echo scene=$NOMAD_META_scene; cat local/input.txt"
    client.job.register_job(
        "pyrender",
        {
            "Job": {
                "ID": "pyrender",
                "Type": "batch",
                "Datacenters": ["*"],
                "ParameterizedJob": {"Payload": "required", "MetaRequired": ["scene"]},
                "TaskGroups": [
                    {
                        "Name": "g",
                        "Tasks": [
                            {
                                "Name": "t",
                                "Driver": "raw_exec",
                                "DispatchPayload": {"File": "input.txt"},
                                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                                "Resources": {"CPU": 20, "MemoryMB": 16},
                            }
                        ],
                    }
                ],
            }
        },
    )
    payload = base64.b64encode(b"frame one\n").decode()
    first = client.job.dispatch_job(
        "pyrender", payload=payload, meta={"scene": "intro"}, idempotency_token="take-1"
    )
    again = client.job.dispatch_job(
        "pyrender", payload=payload, meta={"scene": "intro"}, idempotency_token="take-1"
    )
    child = first["DispatchedJobID"]
    expect(first.get("EvalID"), f"the first dispatch answers an evaluation: {first}")
    expect(again["DispatchedJobID"] == child, f"one instance per token: {first} {again}")
    expect(client.job.get_job(child)["ParentID"] == "pyrender", "the instance names its parent")

    def finished():
        allocs = client.job.get_allocations(child)
        return len(allocs) == 1 and allocs[0]["ClientStatus"] == "complete" and allocs[0]

    alloc = wait_for("the dispatched instance completes", finished, timeout=120)
    logs = client.client.stream_logs.stream(alloc["ID"], "t", "stdout", plain=True)
    expect(logs == "scene=intro\nframe one\n", f"payload and meta reach the task: {logs!r}")
    children = [j["ID"] for j in client.jobs.get_jobs() if j["ParentID"] == "pyrender"]
    expect(children == [child], f"one instance listed under its parent: {children}")
    client.job.deregister_job("pyrender", purge=True)


def purge(client):
    answer = client.job.deregister_job(JOB_ID, purge=True)
    expect(answer.get("EvalID"), f"deregister answers an EvalID: {answer}")

    def gone():
        try:
            client.job.get_job(JOB_ID)
            return False
        except nomad_errors.URLNotFoundNomadException:
            return True

    wait_for("the purged job gone", gone)
    wait_for("no allocation left running", lambda: not running_allocs_anywhere(client))


def running_allocs_anywhere(client):
    return [
        a
        for a in client.allocations.get_allocations()
        if a["JobID"] == JOB_ID and a["ClientStatus"] in ("pending", "running")
    ]


def refuses_a_misspelled_field(client):
    try:
        client.job.register_job(JOB_ID, {"Job": job_spec("v0"), "EnforceIndx": True})
    except nomad_errors.BadRequestNomadException as error:
        print(f"ok: a misspelled field is refused ({error.nomad_resp.status_code})")
        return
    raise AssertionError("a misspelled request field was accepted")


def main():
    client = nomad.Nomad(address=os.environ["NOMAD_ADDR"], timeout=30)
    nodes = wait_for(
        "two ready nodes",
        lambda: (n := [x for x in client.nodes.get_nodes() if x["Status"] == "ready"])
        and len(n) == 2
        and n,
    )
    print(f"ok: nodes {[n['Name'] for n in nodes]}")
    refuses_a_misspelled_field(client)
    eval_id = register_and_run(client)
    check_evaluations(client, eval_id)
    check_logs(client)
    promoted = promote_a_canary(client)
    check_deployments(client, promoted)
    drain_a_node(client)
    read_and_write_a_variable(client)
    dispatch_once_per_token(client)
    purge(client)
    print("python-nomad: every step passed")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, nomad_errors.BaseNomadException) as failure:
        detail = getattr(failure, "nomad_resp", None)
        if detail is not None and hasattr(detail, "text"):
            failure = f"{failure}: HTTP {detail.status_code} {detail.text}"
        print(f"python-nomad: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
