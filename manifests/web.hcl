# A small web service on a dynamic port: three copies of busybox's httpd (Debian's
# busybox-static provides /bin/busybox), each answering with its allocation's name.
#   nctl apply -f manifests/web.hcl --wait
#   nctl get allocs -o wide        (the Ports column shows each copy's port)
#   curl http://127.0.0.1:<port>/
#   nctl service info web          (each copy in the service catalogue, with its check's health)
#   dig @127.0.0.1 -p 8600 +short SRV web.service.nomos
job "web" {
  datacenters = ["*"]
  type        = "service"

  group "frontend" {
    count = 3

    network {
      port "http" {}
    }

    service {
      name = "web"
      port = "http"
      tags = ["frontend"]

      check {
        type     = "http"
        path     = "/"
        interval = "5s"
        timeout  = "1s"
      }
    }

    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }

    task "httpd" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args = [
          "-c",
          "mkdir -p www && echo \"hello from ${NOMAD_ALLOC_NAME}\" > www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${NOMAD_PORT_http} -h www",
        ]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
