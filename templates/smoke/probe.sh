# kubenorn's workload smoke test probe, run by `sh -s` in a smoke pod (busybox) and on each node.
# Arguments: SERVICE_URL NAME_URL SECONDS BACKENDS LOOKUP [NODE=POD_URL ...]
#   NAME_URL and LOOKUP: the Service by its DNS name and a name to resolve ("-": skip both).
# Prints one line per result: pod NODE ok|fail ANSWER, backend NODE SECONDS, tries N,
# dns ok|fail OUTPUT, by-name ok|fail ANSWER.
fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsS -m 3 "$1" 2>&1; else wget -q -T 3 -O - "$1" 2>&1; fi
}
service_url=$1; name_url=$2; seconds=$3; backends=$4; lookup=$5; shift 5
for pair in "$@"; do
  node=${pair%%=*}; url=${pair#*=}
  if answer=$(fetch "$url"); then echo "pod $node ok $answer"; else echo "pod $node fail $answer"; fi
done
# The Service by its ClusterIP until every backend has answered (each answers with its node)
# or SECONDS have passed: kube-proxy programs a new endpoint a moment after its pod is Ready.
start=$(date +%s); seen=" "; i=0
while [ "$(date +%s)" -lt $((start + seconds)) ]; do
  i=$((i + 1))
  answer=$(fetch "$service_url") || answer=""
  case "$answer" in
    "") sleep 0.2 ;;
    *)
      case "$seen" in
        *" $answer "*) sleep 0.1 ;;
        *) seen="$seen$answer "; echo "backend $answer $(($(date +%s) - start))" ;;
      esac ;;
  esac
  missing=0
  for backend in $backends; do
    case "$seen" in *" $backend "*) ;; *) missing=1 ;; esac
  done
  [ "$missing" = 0 ] && break
done
echo "tries $i"
[ "$lookup" = "-" ] && exit 0
if answer=$(nslookup "$lookup" 2>&1); then echo "dns ok"; else echo "dns fail $(echo "$answer" | tr '\n' ' ')"; fi
if answer=$(fetch "$name_url"); then echo "by-name ok $answer"; else echo "by-name fail $answer"; fi
