# The example job `nctl dev` applies on a fresh data dir.
#
# A raw_exec service that needs nothing but /bin/sh: two copies, each printing a line every
# five seconds. Try:
#   nctl status example
#   nctl logs -f <alloc id prefix>
#   nctl apply -f manifests/example.hcl   (after changing count or the message: a rolling update)
#   nctl stop example
job "example" {
  datacenters = ["*"]
  type        = "service"

  group "greeter" {
    count = 2

    update {
      max_parallel     = 1
      min_healthy_time = "2s"
      healthy_deadline = "1m"
    }

    restart {
      attempts = 3
      interval = "1m"
      delay    = "2s"
      mode     = "delay"
    }

    task "greet" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args = [
          "-c",
          "i=0; while true; do i=$((i+1)); echo \"hello $i from ${NOMAD_ALLOC_NAME} (${NOMAD_ALLOC_ID})\"; sleep 5; done",
        ]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
