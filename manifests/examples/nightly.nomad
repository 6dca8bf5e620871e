# A periodic batch job written the Nomad way, with an input variable.
# nctl validate --var retention=14 manifests/examples/nightly.nomad
variable "retention" {
  type        = number
  default     = 7
  description = "Days of files to keep."

  validation {
    condition     = var.retention >= 1
    error_message = "Keep at least one day."
  }
}

job "nightly-cleanup" {
  type = "batch"

  periodic {
    crons            = ["15 3 * * *"]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  group "cleanup" {
    task "cleanup" {
      driver = "raw_exec"

      config {
        command = "/bin/busybox"
        args    = ["find", "/tmp", "-mtime", "+${var.retention}", "-type", "f", "-delete"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
