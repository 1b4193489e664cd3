module kubenorn.lab/pause

go 1.26
