# A batch job: runs once to completion. `nctl status countdown` shows it `complete`, and
# `nctl logs <alloc>` prints its output.
job "countdown" {
  datacenters = ["*"]
  type        = "batch"

  group "count" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "count" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 3 2 1; do echo $i; sleep 1; done; echo liftoff"]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
